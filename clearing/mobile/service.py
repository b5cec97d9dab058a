"""Top-ups: reserve (caps checked, nothing charged yet), record Stripe's answer, post the money
once paid, refund an undelivered load (on request or at expiry), and the resident's views.

Takes a session and never commits: the endpoint commits the reservation before it calls
Stripe, so a webhook that arrives before Stripe's answer is stored still finds the top-up.
Money moves on the session's connection, in the caller's transaction, with ids derived from
the PaymentIntent: a repeat posts nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.auth.models import Role
from clearing.auth.service import Principal, require_role
from clearing.books import chart
from clearing.db.base import utc_now
from clearing.errors import NotFound, Unavailable
from clearing.lists import repository as lists_repository
from clearing.lists import service as lists_service
from clearing.lists.models import PendingLoadState
from clearing.mobile import repository, rules
from clearing.mobile.errors import (
    CardNotUsable,
    NotRefundable,
    RefundAfterDelivery,
    RequestIdReused,
    TopupInProgress,
)
from clearing.mobile.gateway import Intent, StripeGateway
from clearing.mobile.models import PaymentMethodType, Topup, TopupFlag, TopupState
from clearing.registry import money
from clearing.registry import service as registry_service
from clearing.registry.models import CardStatus
from clearing.residents import service as residents_service
from clearing.residents.errors import CardNotUsable as ResidentCardNotUsable
from clearing.settings import Settings
from ledger import account_id
from ledger.port import LedgerPort

# A top-up without Stripe's answer for this long was cut off (crash): its request may be retried.
CREATE_IN_PROGRESS = timedelta(seconds=60)
# Wallet payments (Alipay, WeChat Pay) left unpaid stop counting against the card's cap.
IN_FLIGHT_COUNTED = timedelta(hours=1)
SOURCE_STRIPE = "stripe"
POSTED_STATES = (TopupState.SUCCEEDED, TopupState.DELIVERED)
FINAL_STATES = (TopupState.REFUNDED, TopupState.EXPIRED)


@dataclass(frozen=True, slots=True)
class TopupRequest:
    card_no: str
    amount_fen: int
    request_id: str
    method_type: PaymentMethodType
    payment_method: str | None


async def linked_card(session: AsyncSession, resident_id: str, card_no: str) -> None:
    """The card must be linked to this resident (404 otherwise, as for a number never issued).
    Its state is checked after a repeated request is recognised, so a repeat still answers."""
    try:
        await residents_service.require_linked_card(session, resident_id, card_no)
    except ResidentCardNotUsable:
        pass  # linked, but not active: refused below unless this request was already made


async def reserve_topup(
    session: AsyncSession,
    ledger: LedgerPort | None,
    resident_id: str,
    body: TopupRequest,
    settings: Settings,
) -> tuple[Topup, bool]:
    """The stored top-up for this request (caps checked, nothing charged yet) and whether
    Stripe must still be called for it. The same request again returns the same top-up.
    Only a card the resident linked (clearing/residents) can be topped up."""
    topup_id = rules.topup_id_for(resident_id, body.request_id)
    await linked_card(session, resident_id, body.card_no)
    card = await registry_service.card_for_update(session, body.card_no)  # one top-up at a time
    existing = await repository.topup_for_update(session, topup_id)
    if existing is not None:
        return existing, _must_call_stripe(existing, body)
    if card.status is not CardStatus.ACTIVE or await lists_service.is_denied(session, card.card_no):
        raise CardNotUsable(
            f"card {card.card_no} is {card.status.value}: a top-up could never reach it; "
            "top up the card that replaced it, or ask the service desk"
        )
    now = utc_now()
    on_card, pending = await _card_balances(session, ledger, card.card_no)
    in_flight = await repository.in_flight_fen(session, card.card_no, now - IN_FLIGHT_COUNTED)
    caps = rules.Caps(settings.topup_fen_max, settings.card_balance_fen_max)
    rules.check_caps(caps, body.amount_fen, on_card, pending + in_flight)
    topup = Topup(
        topup_id=topup_id,
        resident_id=resident_id,
        request_id=body.request_id,
        card_no=card.card_no,
        amount_fen=body.amount_fen,
        method_type=body.method_type,
        state=TopupState.CREATED,
        payment_intent_id=None,
        load_id=None,
        fee_fen=0,
        failure=None,
        flag=None,
        flag_detail=None,
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(topup)
            await session.flush()
    except IntegrityError:
        raise TopupInProgress(
            "the same request is being handled right now: send it again in a few seconds"
        ) from None
    return topup, True


def _must_call_stripe(topup: Topup, body: TopupRequest) -> bool:
    if (topup.card_no, topup.amount_fen, topup.method_type) != (
        body.card_no,
        body.amount_fen,
        body.method_type,
    ):
        raise RequestIdReused(
            f"request_id {body.request_id!r} was a top-up of {topup.amount_fen} fen to card "
            f"{topup.card_no}: use a new request_id for a new top-up"
        )
    if topup.payment_intent_id is not None or topup.state is not TopupState.CREATED:
        return False
    if utc_now() - topup.created_at < CREATE_IN_PROGRESS:
        raise TopupInProgress(
            "this top-up is being created right now: ask for it again in a few seconds"
        )
    return True  # cut off before Stripe answered: the same idempotency key asks again


async def _card_balances(
    session: AsyncSession, ledger: LedgerPort | None, card_no: str
) -> tuple[int, int]:
    """(on the card, paid but not yet on the card) in fen, from the ledger."""
    if ledger is None:
        raise Unavailable("the ledger is not available: card money cannot move")
    conn = await session.connection()
    ids = {account_id(chart.card(card_no)): 0, account_id(chart.card_pending(card_no)): 1}
    found = [0, 0]
    states = await ledger.lookup_accounts(list(ids), conn=conn)
    for state in states:
        found[ids[state.id]] = state.balance.credit_balance
    if len(states) < len(ids):
        # Opened now, under the card's lock: the webhook that posts later never opens them.
        await money.open_card_accounts(ledger, [card_no], conn=conn)
    return found[0], found[1]


def intent_metadata(topup: Topup) -> dict[str, str]:
    return {
        "kind": "topup",
        "topup_id": topup.topup_id,
        "card_no": topup.card_no,
        "resident_id": topup.resident_id,
    }


async def record_intent(session: AsyncSession, topup_id: str, intent: Intent) -> Topup:
    """Store Stripe's answer (a webhook may have come first: never move a state back)."""
    topup = await _locked(session, topup_id)
    if topup.payment_intent_id is None:
        topup.payment_intent_id = intent.id
    if topup.state is TopupState.CREATED:
        if intent.status in ("requires_action", "requires_payment_method"):
            topup.state = TopupState.REQUIRES_ACTION
        elif intent.status == "canceled":
            topup.state = TopupState.FAILED
            topup.failure = "the payment was cancelled"
    topup.updated_at = utc_now()
    await session.flush()
    return topup


async def record_declined(session: AsyncSession, topup_id: str, reason: str) -> Topup:
    topup = await _locked(session, topup_id)
    if topup.state is TopupState.CREATED:
        topup.state = TopupState.FAILED
        topup.failure = reason[:300]
        topup.updated_at = utc_now()
        await session.flush()
    return topup


async def _locked(session: AsyncSession, topup_id: str) -> Topup:
    topup = await repository.topup_for_update(session, topup_id)
    if topup is None:
        raise NotFound(f"no top-up {topup_id}")
    return topup


async def post_paid(
    session: AsyncSession,
    ledger: LedgerPort | None,
    topup: Topup,
    payment_intent_id: str,
    fee_fen: int,
    settings: Settings,
) -> bool:
    """Stripe has the money: credit card-pending and put the load on the action list, once.
    False when it was already posted (or the top-up is over). `topup` is locked by the caller."""
    if topup.state in POSTED_STATES or topup.state in FINAL_STATES:
        return False
    if ledger is None:
        raise Unavailable("the ledger is not available: card money cannot move")
    conn = await session.connection()
    await money.open_card_accounts(ledger, [topup.card_no], conn=conn)
    transfers = rules.paid_transfers(payment_intent_id, topup.card_no, topup.amount_fen, fee_fen)
    await money.post(ledger, transfers, conn=conn)
    load_id = rules.load_id_for(payment_intent_id)
    now = utc_now()
    await lists_service.add_pending_load(
        session,
        load_id=load_id,
        card_no=topup.card_no,
        amount_fen=topup.amount_fen,
        source=SOURCE_STRIPE,
        expires_at=now + timedelta(days=settings.pending_load_expiry_days),
    )
    topup.payment_intent_id = payment_intent_id
    topup.state = TopupState.SUCCEEDED
    topup.load_id = load_id
    topup.fee_fen = fee_fen
    topup.failure = None
    topup.updated_at = now
    await session.flush()
    return True


async def sync_delivery(session: AsyncSession, topup: Topup) -> Topup:
    """A paid top-up whose load the clearing engine confirmed on the card is delivered."""
    if topup.state is TopupState.SUCCEEDED and topup.load_id:
        load = await lists_repository.pending_load(session, topup.load_id)
        if load is not None and load.state is PendingLoadState.DELIVERED:
            topup.state = TopupState.DELIVERED
            topup.updated_at = load.state_changed_at
            await session.flush()
    return topup


async def withdraw_undelivered(
    session: AsyncSession,
    ledger: LedgerPort | None,
    topup: Topup,
    final: TopupState,
) -> None:
    """The load leaves the action list and its money goes back to stripe:balance, or
    RefundAfterDelivery if it reached the card. `topup` is locked and paid."""
    await sync_delivery(session, topup)
    if topup.state is TopupState.DELIVERED:
        raise RefundAfterDelivery(
            f"top-up {topup.topup_id} was written onto card {topup.card_no} at "
            f"{topup.updated_at:%Y-%m-%d %H:%M} UTC: the money is on the card; refund the card "
            "at a service counter instead"
        )
    if topup.state is not TopupState.SUCCEEDED or not topup.payment_intent_id or not topup.load_id:
        raise NotRefundable(f"top-up {topup.topup_id} is {topup.state.value}: nothing to refund")
    if ledger is None:
        raise Unavailable("the ledger is not available: card money cannot move")
    state = PendingLoadState.EXPIRED if final is TopupState.EXPIRED else PendingLoadState.CANCELLED
    await lists_service.mark_pending_load(session, topup.load_id, state)
    conn = await session.connection()
    transfers = rules.refund_transfers(topup.payment_intent_id, topup.card_no, topup.amount_fen)
    await money.post(ledger, transfers, conn=conn)
    topup.state = final
    topup.updated_at = utc_now()
    await session.flush()


def flag(topup: Topup, what: TopupFlag, detail: str) -> None:
    topup.flag = what
    topup.flag_detail = detail[:300]
    topup.updated_at = utc_now()


async def topups_of(session: AsyncSession, resident_id: str) -> list[Topup]:
    topups = await repository.topups_of_resident(session, resident_id)
    for topup in topups:
        await sync_delivery(session, topup)
    return topups


async def topup_of(session: AsyncSession, resident_id: str, topup_id: str) -> Topup:
    """The resident's own top-up (404 for anyone else's, as for an id never made)."""
    topup = await repository.topup(session, topup_id)
    if topup is None or topup.resident_id != resident_id:
        raise NotFound(f"no top-up {topup_id}")
    return await sync_delivery(session, topup)


async def staff_topup(session: AsyncSession, principal: Principal, topup_id: str) -> Topup:
    require_role(principal, Role.ADMIN, Role.FINANCE)
    topup = await repository.topup_for_update(session, topup_id)
    if topup is None:
        raise NotFound(f"no top-up {topup_id}")
    return await sync_delivery(session, topup)


async def flagged(session: AsyncSession, principal: Principal) -> list[Topup]:
    require_role(principal, Role.ADMIN, Role.FINANCE)
    return await repository.flagged_topups(session)


async def stripe_topups_to_expire(session: AsyncSession, now: datetime, limit: int) -> list[str]:
    """Ids of paid top-ups whose load is past its expiry and still undelivered."""
    out = []
    for load in await lists_service.pending_loads_to_expire(session, now, limit):
        if load.source != SOURCE_STRIPE:
            continue  # another owner's load (a replacement): its owner expires it
        topup_id = await repository.topup_id_of_load(session, load.load_id)
        if topup_id is not None:
            out.append(topup_id)
    return out


async def expire_one(
    session: AsyncSession,
    ledger: LedgerPort | None,
    gateway: StripeGateway,
    topup_id: str,
    now: datetime,
) -> Topup | None:
    """Refund one paid top-up whose load expired undelivered; None if there is nothing to do.

    Booked first and refunded at Stripe last: a refusal there rolls the booking back, and the
    next run asks again with the same idempotency key."""
    topup = await repository.topup_for_update(session, topup_id)
    if topup is None or topup.state is not TopupState.SUCCEEDED or not topup.load_id:
        return None
    load = await lists_repository.pending_load(session, topup.load_id)
    if load is None or load.state is not PendingLoadState.PENDING or load.expires_at > now:
        return None
    await withdraw_undelivered(session, ledger, topup, TopupState.EXPIRED)
    await gateway.refund(topup.payment_intent_id or "", f"expire-{topup.topup_id}")
    return topup
