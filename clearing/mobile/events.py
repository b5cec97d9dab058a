"""Stripe's webhook events: each handled once (its id), in whatever order Stripe sends them.

`payment_intent.succeeded` posts the top-up (or pays the bill), `payment_intent.payment_failed`
marks it failed, `charge.refunded` withdraws an undelivered load (and is refused, for staff, once
the load is on the card), `charge.dispute.created` flags it for staff. An event that names a
top-up whose PaymentIntent id is not stored yet finds it by the intent's metadata, asking
Stripe for it when the event does not carry it. Never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.db.base import utc_now
from clearing.errors import InvalidRequest
from clearing.mobile import repository, service
from clearing.mobile.errors import NotRefundable, RefundAfterDelivery
from clearing.mobile.gateway import StripeGateway, intent_of
from clearing.mobile.models import EventOutcome, StripeEvent, Topup, TopupFlag, TopupState
from clearing.settings import Settings
from ledger.port import LedgerPort

EVENT_ID_LENGTH_MAX = 64


@dataclass(frozen=True, slots=True)
class EventResult:
    event_id: str
    outcome: EventOutcome
    detail: str | None
    duplicate: bool


@dataclass(frozen=True, slots=True)
class _Context:
    session: AsyncSession
    ledger: LedgerPort | None
    gateway: StripeGateway
    settings: Settings


async def handle_event(
    session: AsyncSession,
    ledger: LedgerPort | None,
    gateway: StripeGateway,
    event: dict[str, Any],
    settings: Settings,
) -> EventResult:
    """Apply one verified event, or nothing if its id was seen (a re-delivery)."""
    event_id = event.get("id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= EVENT_ID_LENGTH_MAX:
        raise InvalidRequest("a Stripe event has an id of at most 64 characters")
    seen = await repository.event(session, event_id)
    if seen is not None:
        return EventResult(event_id, seen.outcome, seen.detail, duplicate=True)
    obj = event["data"].get("object") or {}
    row = StripeEvent(
        event_id=event_id,
        event_type=str(event.get("type") or "")[:64],
        object_id=str(obj.get("id") or "")[:64] or None,
        outcome=EventOutcome.IGNORED,
        detail=None,
        received_at=utc_now(),
    )
    try:
        # The same event delivered twice at once: the second waits on the first's row, then
        # finds it (PostgreSQL's unique index; SQLite writes one transaction at a time).
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return EventResult(event_id, EventOutcome.NOTHING_TO_DO, "delivered twice", True)
    context = _Context(session, ledger, gateway, settings)
    handler = _HANDLERS.get(row.event_type)
    if handler is None:
        outcome, detail = EventOutcome.IGNORED, f"onecard does not handle {row.event_type}"
    else:
        outcome, detail = await handler(context, obj)
    row.outcome = outcome
    row.detail = detail[:300] if detail else None
    await session.flush()
    return EventResult(event_id, outcome, row.detail, duplicate=False)


async def _topup_of_intent(
    context: _Context, payment_intent_id: str, metadata: dict[str, str] | None
) -> Topup | None:
    """The top-up a PaymentIntent pays, locked: by the stored id, else by the intent's metadata."""
    topup_id = await repository.topup_id_of_intent(context.session, payment_intent_id)
    if topup_id is None:
        if metadata is None:  # a charge or dispute event: the intent says which top-up
            metadata = (await context.gateway.retrieve_intent(payment_intent_id)).metadata
        if metadata.get("kind", "topup") != "topup":
            return None
        topup_id = metadata.get("topup_id")
    if not topup_id:
        return None
    return await repository.topup_for_update(context.session, topup_id)


def _other_intent(topup: Topup, payment_intent_id: str) -> bool:
    """A second PaymentIntent for one top-up (a fake Stripe without idempotency keys, or an
    intent made by hand): staff refund it; the top-up stays with its own."""
    if topup.payment_intent_id in (None, payment_intent_id):
        return False
    service.flag(
        topup,
        TopupFlag.OTHER_INTENT,
        f"PaymentIntent {payment_intent_id} also names this top-up: refund it in Stripe",
    )
    return True


async def _succeeded(context: _Context, obj: dict[str, Any]) -> tuple[EventOutcome, str]:
    intent = intent_of(obj)
    topup = await _topup_of_intent(context, intent.id, intent.metadata)
    if topup is None:
        return EventOutcome.UNMATCHED, f"{intent.id} pays no top-up of onecard"
    if _other_intent(topup, intent.id):
        return EventOutcome.REFUSED, f"{intent.id} is a second intent for {topup.topup_id}"
    if topup.state in service.POSTED_STATES or topup.state in service.FINAL_STATES:
        return EventOutcome.NOTHING_TO_DO, f"{topup.topup_id} is already {topup.state.value}"
    fee = await context.gateway.fee_fen(intent.latest_charge_id)
    await service.post_paid(
        context.session, context.ledger, topup, intent.id, fee, context.settings
    )
    return EventOutcome.APPLIED, f"{topup.topup_id} paid: {topup.amount_fen} fen, fee {fee}"


async def _failed(context: _Context, obj: dict[str, Any]) -> tuple[EventOutcome, str]:
    intent = intent_of(obj)
    topup = await _topup_of_intent(context, intent.id, intent.metadata)
    if topup is None:
        return EventOutcome.UNMATCHED, f"{intent.id} pays no top-up of onecard"
    if _other_intent(topup, intent.id):
        return EventOutcome.REFUSED, f"{intent.id} is a second intent for {topup.topup_id}"
    if topup.state not in (TopupState.CREATED, TopupState.REQUIRES_ACTION):
        return EventOutcome.NOTHING_TO_DO, f"{topup.topup_id} is already {topup.state.value}"
    topup.payment_intent_id = intent.id
    topup.state = TopupState.FAILED
    topup.failure = (intent.failure or "the payment failed")[:300]
    topup.updated_at = utc_now()
    return EventOutcome.APPLIED, f"{topup.topup_id} failed: {topup.failure}"


async def _refunded(context: _Context, obj: dict[str, Any]) -> tuple[EventOutcome, str]:
    payment_intent_id = obj.get("payment_intent")
    if not payment_intent_id:
        return EventOutcome.UNMATCHED, "a charge of no PaymentIntent"
    topup = await _topup_of_intent(context, str(payment_intent_id), None)
    if topup is None:
        return EventOutcome.UNMATCHED, f"{payment_intent_id} pays no top-up of onecard"
    if _other_intent(topup, str(payment_intent_id)):
        return EventOutcome.REFUSED, f"{payment_intent_id} is a second intent for {topup.topup_id}"
    if topup.state in service.FINAL_STATES:
        return EventOutcome.NOTHING_TO_DO, f"{topup.topup_id} is already {topup.state.value}"
    if not obj.get("refunded"):
        detail = f"partial refund of {obj.get('amount_refunded')} fen: settle it by hand"
        service.flag(topup, TopupFlag.REFUND_AFTER_DELIVERY, detail)
        return EventOutcome.REFUSED, detail
    if topup.state in (TopupState.CREATED, TopupState.REQUIRES_ACTION, TopupState.FAILED):
        # Refunded, so it was paid: the success event is late. Post it first, then refund.
        fee = await context.gateway.fee_fen(obj.get("id"))
        await service.post_paid(
            context.session, context.ledger, topup, str(payment_intent_id), fee, context.settings
        )
    try:
        await service.withdraw_undelivered(
            context.session, context.ledger, topup, TopupState.REFUNDED
        )
    except RefundAfterDelivery as refused:
        service.flag(topup, TopupFlag.REFUND_AFTER_DELIVERY, refused.detail)
        return EventOutcome.REFUSED, refused.detail
    except NotRefundable as nothing:
        return EventOutcome.NOTHING_TO_DO, nothing.detail
    return EventOutcome.APPLIED, f"{topup.topup_id} refunded; load {topup.load_id} withdrawn"


async def _disputed(context: _Context, obj: dict[str, Any]) -> tuple[EventOutcome, str]:
    payment_intent_id = obj.get("payment_intent")
    if not payment_intent_id:
        return EventOutcome.UNMATCHED, "a dispute of no PaymentIntent"
    topup = await _topup_of_intent(context, str(payment_intent_id), None)
    if topup is None:
        return EventOutcome.UNMATCHED, f"{payment_intent_id} pays no top-up of onecard"
    due = (obj.get("evidence_details") or {}).get("due_by")
    detail = (
        f"dispute {obj.get('id')} ({obj.get('reason') or 'no reason'}) of {obj.get('amount')} "
        f"fen: answer it in Stripe{f' before {due}' if due else ''}"
    )
    service.flag(topup, TopupFlag.DISPUTED, detail)
    return EventOutcome.APPLIED, detail


_HANDLERS = {
    "payment_intent.succeeded": _succeeded,
    "payment_intent.payment_failed": _failed,
    "charge.refunded": _refunded,
    "charge.dispute.created": _disputed,
}
