"""Request and response bodies of the mobile channel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from clearing.http.bodies import JSON_ENUM, JsonInt, RequestModel
from clearing.mobile.models import EventOutcome, PaymentMethodType, TopupFlag, TopupState
from clearing.registry.schemas import CardNo

RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
PaymentMethodId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,64}$")]


class TopupCreate(RequestModel):
    card_no: CardNo
    amount_fen: JsonInt = Field(gt=0, le=2**32 - 1, description="Amount in fen (1 yuan = 100)")
    request_id: RequestId = Field(
        description="The phone's own id for this top-up: sending it again never charges twice"
    )
    payment_method_type: Annotated[PaymentMethodType, JSON_ENUM] = PaymentMethodType.CARD
    payment_method: PaymentMethodId | None = Field(
        default=None,
        description="A Stripe PaymentMethod (e.g. pm_card_visa): the payment is confirmed at "
        "once. Without it (Alipay, WeChat Pay) the phone confirms with the client_secret.",
    )


class TopupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    topup_id: str
    card_no: str
    amount_fen: int
    method_type: PaymentMethodType
    state: TopupState
    payment_intent_id: str | None
    load_id: str | None
    fee_fen: int
    failure: str | None
    created_at: datetime
    updated_at: datetime


class TopupCreated(TopupOut):
    client_secret: str | None = Field(
        default=None, description="For the phone's Stripe SDK to finish a wallet payment"
    )


class TopupStaffOut(TopupOut):
    resident_id: str
    flag: TopupFlag | None
    flag_detail: str | None


class TopupList(BaseModel):
    topups: list[TopupOut]


class FlaggedList(BaseModel):
    topups: list[TopupStaffOut]


class EventAck(BaseModel):
    event_id: str
    outcome: EventOutcome
    detail: str | None
    duplicate: bool
