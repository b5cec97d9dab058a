"""Request and response bodies of the bill API (lookup, counter payments, receipts, staff)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from clearing.billing.models import ConfirmationState, PaymentChannel, PaymentStatus
from clearing.billing.rules import BILL_AMOUNT_FEN_CEILING, BillStatus
from clearing.http.bodies import JsonInt, RequestModel
from clearing.registry.schemas import CardNo, TerminalId

AccountNo = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,32}$")]
BillId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{8,64}$")]
BillerCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,31}$")]
TERMINAL_SEQ_MAX = 2**32 - 1


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class BillOut(_Out):
    biller_code: str
    account_no: str
    bill_id: str
    amount_due_fen: int
    due_date: date
    period: str
    status: BillStatus
    holder_name: str


class CounterPaymentStart(RequestModel):
    account_no: AccountNo = Field(description="The biller's account number on the bill")
    bill_id: BillId = Field(description="The bill being paid, as the lookup returned it")
    amount_fen: JsonInt = Field(gt=0, le=BILL_AMOUNT_FEN_CEILING, description="The amount due")
    card_no: CardNo = Field(description="The card that will be tapped to pay")
    request_id: RequestId = Field(description="The counter's own id of this request (retry-safe)")


class CounterTap(RequestModel):
    terminal_id: TerminalId = Field(description="The biller's counter terminal that debited")
    terminal_seq: JsonInt = Field(ge=0, le=TERMINAL_SEQ_MAX, description="Its journal sequence")


class BillPaymentOut(_Out):
    id: str
    biller_code: str
    account_no: str
    bill_id: str
    period: str
    amount_fen: int
    channel: PaymentChannel
    status: PaymentStatus
    card_no: str | None
    external_ref: str | None
    settlement_day: date | None
    created_at: datetime
    paid_at: datetime | None


class ConfirmationOut(_Out):
    state: ConfirmationState
    attempts: int
    last_error: str | None
    biller_ack: str | None
    acknowledged_at: datetime | None


class StaffBillPaymentOut(BillPaymentOut):
    resident_id: str | None
    confirmation: ConfirmationOut | None


class ReceiptOut(_Out):
    id: str
    payment_id: str
    biller_code: str
    biller_name: str
    account_no: str
    bill_id: str
    period: str
    amount_fen: int
    channel: PaymentChannel
    paid_from: str
    paid_at: datetime
