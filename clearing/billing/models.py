"""Tables of the bill workflow (created by migration 0005_billing; these must match it).

- `bill_payments`: one row per intent to pay a bill; unique (requester, request_id) makes a
  repeated request the same payment, unique `paid_bill_key` makes a bill paid at most once.
- `bill_receipts`: what the resident can open later; one per paid payment.
- `bill_confirmations`: the outbox of biller confirmations, one row per paid payment, written
  in the transaction that paid it and dispatched to Celery after the commit; it records the
  biller's acknowledgement once.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from clearing.db.base import Base, UtcDateTime, str_enum


class PaymentChannel(enum.StrEnum):
    STRIPE = "stripe"  # paid on the phone; the stripe workflow calls bill_paid
    COUNTER = "counter"  # paid at the biller's counter by a card purchase tap


class PaymentStatus(enum.StrEnum):
    STARTED = "started"  # intent recorded, nothing charged yet
    PAID = "paid"  # money moved, receipt written, confirmation queued


class ConfirmationState(enum.StrEnum):
    PENDING = "pending"  # not yet acknowledged by the biller (queued or retrying)
    ACKNOWLEDGED = "acknowledged"  # the biller acknowledged; recorded once


class BillPayment(Base):
    __tablename__ = "bill_payments"
    __table_args__ = (UniqueConstraint("requester", "request_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "bp_" + 32 hex
    requester: Mapped[str] = mapped_column(String(80))  # resident id, or "counter:<biller>"
    request_id: Mapped[str] = mapped_column(String(64))
    resident_id: Mapped[str | None] = mapped_column(String(64), index=True)
    biller_code: Mapped[str] = mapped_column(String(32), index=True)
    account_no: Mapped[str] = mapped_column(String(32))
    bill_id: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[PaymentChannel] = mapped_column(str_enum(PaymentChannel, 16))
    card_no: Mapped[str | None] = mapped_column(String(16))  # counter: the card that paid
    status: Mapped[PaymentStatus] = mapped_column(str_enum(PaymentStatus, 16))
    paid_bill_key: Mapped[str | None] = mapped_column(String(100), unique=True)  # biller:bill
    paid_from_account: Mapped[str | None] = mapped_column(String(128))
    external_ref: Mapped[str | None] = mapped_column(String(128), unique=True)
    transfer_id: Mapped[str | None] = mapped_column(String(32))  # hex; None: a tap posted it
    settlement_day: Mapped[date | None] = mapped_column(Date, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class BillReceipt(Base):
    __tablename__ = "bill_receipts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "rc_" + 32 hex
    payment_id: Mapped[str] = mapped_column(ForeignKey("bill_payments.id"), unique=True)
    resident_id: Mapped[str | None] = mapped_column(String(64), index=True)
    biller_code: Mapped[str] = mapped_column(String(32))
    biller_name: Mapped[str] = mapped_column(String(200))
    account_no: Mapped[str] = mapped_column(String(32))
    bill_id: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[PaymentChannel] = mapped_column(str_enum(PaymentChannel, 16))
    paid_from: Mapped[str] = mapped_column(String(128))  # "stripe", or the masked card
    paid_at: Mapped[datetime] = mapped_column(UtcDateTime())


class BillConfirmation(Base):
    __tablename__ = "bill_confirmations"

    payment_id: Mapped[str] = mapped_column(ForeignKey("bill_payments.id"), primary_key=True)
    state: Mapped[ConfirmationState] = mapped_column(str_enum(ConfirmationState, 16))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    biller_ack: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
