"""Tables of the mobile channel: top-ups (one per resident request) and Stripe's events as seen.

A top-up row is made (and committed) before Stripe is called, so every webhook finds it by the
PaymentIntent's metadata; an event row is the de-duplication of Stripe's deliveries. Money lives
in the ledger, never here: these rows say what happened and what staff must look at.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from clearing.db.base import Base, UtcDateTime, str_enum


class PaymentMethodType(enum.StrEnum):
    """What Stripe offers in CNY (payment_method_types)."""

    CARD = "card"
    ALIPAY = "alipay"
    WECHAT_PAY = "wechat_pay"


class TopupState(enum.StrEnum):
    CREATED = "created"  # stored; Stripe not yet answered
    REQUIRES_ACTION = "requires_action"  # the PaymentIntent waits for the resident (wallet, 3DS)
    FAILED = "failed"  # declined or abandoned: nothing moved
    SUCCEEDED = "succeeded"  # paid: card-pending credited, the load is on the action list
    DELIVERED = "delivered"  # written onto the card (its load TAC cleared)
    REFUNDED = "refunded"  # paid back before delivery; the load left the action list
    EXPIRED = "expired"  # not delivered within its expiry: refunded through Stripe


class TopupFlag(enum.StrEnum):
    """Why staff must look at a top-up (none: nothing to do)."""

    REFUND_AFTER_DELIVERY = "refund_after_delivery"  # refunded at Stripe, but on the card
    DISPUTED = "disputed"
    OTHER_INTENT = "other_intent"  # a second PaymentIntent names this top-up


class Topup(Base):
    """One top-up a resident asked for: (resident, request_id) is the resident's idempotency key."""

    __tablename__ = "mobile_topups"
    __table_args__ = (
        UniqueConstraint("resident_id", "request_id"),
        Index("ix_mobile_topups_card_no_state", "card_no", "state"),
    )

    topup_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    resident_id: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(64))
    card_no: Mapped[str] = mapped_column(ForeignKey("cards.card_no"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    method_type: Mapped[PaymentMethodType] = mapped_column(str_enum(PaymentMethodType, 16))
    state: Mapped[TopupState] = mapped_column(str_enum(TopupState, 16))
    payment_intent_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    load_id: Mapped[str | None] = mapped_column(String(64))
    fee_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    failure: Mapped[str | None] = mapped_column(String(300))
    flag: Mapped[TopupFlag | None] = mapped_column(str_enum(TopupFlag, 32))
    flag_detail: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class EventOutcome(enum.StrEnum):
    APPLIED = "applied"  # it changed a top-up (or a bill payment)
    NOTHING_TO_DO = "nothing_to_do"  # already reflected (events come in any order)
    REFUSED = "refused"  # e.g. a refund after delivery: recorded for staff
    UNMATCHED = "unmatched"  # names nothing of ours
    IGNORED = "ignored"  # a type we do not handle


class StripeEvent(Base):
    """A Stripe event handled once: its id is the de-duplication key of webhook deliveries."""

    __tablename__ = "mobile_stripe_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64), index=True)
    outcome: Mapped[EventOutcome] = mapped_column(str_enum(EventOutcome, 16))
    detail: Mapped[str | None] = mapped_column(String(300))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
