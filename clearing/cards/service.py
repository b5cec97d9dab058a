"""The card workflow: what happens to a card after its issue, across the registry, the lists,
the tap queue and the ledger.

Lost, blocked and replaced cards go on the deny list in the same transaction as their status;
unblocked ones leave it. A replaced card's deposit moves at once and its balance moves (as a
pending load on the new card) once no more of its taps can arrive; a refund pays back balance
and deposit. Card money moves on the caller's connection, in the caller's transaction. Never
commits.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from clearing.auth.models import Role
from clearing.auth.service import Principal, require_role
from clearing.books import chart
from clearing.db.base import utc_now
from clearing.errors import Conflict, NotFound, Unavailable
from clearing.ingest import repository as ingest_repository
from clearing.lists import service as lists_service
from clearing.registry import money
from clearing.registry import repository as registry_repository
from clearing.registry import service as registry_service
from clearing.registry.lifecycle import CardAction
from clearing.registry.models import (
    Card,
    CardEventKind,
    CardReplacement,
    CardStatus,
    ReplacementState,
)
from clearing.residents import service as residents_service
from ledger import account_id
from ledger.port import LedgerPort

log = logging.getLogger("clearing.cards")

# After every active terminal holds the deny list that refuses the old card, wait this long
# for journals written before that fetch to be uploaded, then move the balance.
REPLACEMENT_SETTLE = timedelta(hours=1)
# A terminal that never fetches again (broken, stolen) must not hold a resident's money forever.
REPLACEMENT_HOLD_MAX = timedelta(days=7)
REPLACEMENTS_PER_RUN_MAX = 500


async def visible_card(session: AsyncSession, principal: Principal, card_no: str) -> None:
    """Staff (admin, finance) see every card; a resident only the cards linked to their account
    (clearing/residents), whatever the card's state: any other is 404 like a number never
    issued, so a resident token cannot find out which card numbers exist."""
    require_role(principal, Role.ADMIN, Role.FINANCE, Role.RESIDENT)
    if principal.role is not Role.RESIDENT:
        await registry_service.visible_card(session, principal, card_no)
    elif (
        not principal.subject
        or await residents_service.linked_resident(session, card_no) != principal.subject
    ):
        raise NotFound(f"no card {card_no} is linked to your account: link it first")


async def list_cards(
    session: AsyncSession, principal: Principal, *, limit: int, offset: int
) -> list[Card]:
    """Staff: every card, paged; a resident: the cards linked to their account."""
    require_role(principal, Role.ADMIN, Role.FINANCE, Role.RESIDENT)
    if principal.role is not Role.RESIDENT:
        return await registry_service.list_cards(session, principal, limit=limit, offset=offset)
    linked = await residents_service.linked_cards(session, principal.subject or "")
    return linked[offset : offset + limit]


class CardHasUnclearedTaps(Conflict):
    code = "card_has_uncleared_taps"
    title = "The card still has taps waiting to be cleared"


async def report_lost(
    session: AsyncSession, principal: Principal, card_no: str, reason: str
) -> tuple[Card, int]:
    """The card goes on the deny list at once; returns it and the deny-list version. A resident
    reports only a card linked to their account (any other: 404, as for a number never issued)."""
    require_role(principal, Role.ADMIN, Role.RESIDENT)
    await visible_card(session, principal, card_no)
    card = await registry_service.card_for_update(session, card_no)
    if card.status is CardStatus.LOST:
        return card, await lists_service.deny_card(session, card_no, f"lost: {card_no}")
    registry_service.require_action(card, CardAction.REPORT_LOST)
    version = await _set_status(
        session, card, CardStatus.LOST, CardEventKind.REPORTED_LOST, principal.actor, reason
    )
    return card, version


async def block_card(
    session: AsyncSession, card_no: str, actor: str, reason: str
) -> tuple[Card, int]:
    card = await registry_service.card_for_update(session, card_no)
    if card.status is CardStatus.BLOCKED:
        return card, await lists_service.deny_card(session, card_no, f"blocked: {card_no}")
    registry_service.require_action(card, CardAction.BLOCK)
    version = await _set_status(
        session, card, CardStatus.BLOCKED, CardEventKind.BLOCKED, actor, reason
    )
    return card, version


async def unblock_card(
    session: AsyncSession, card_no: str, actor: str, reason: str
) -> tuple[Card, int]:
    """A blocked card, or a lost card found again, becomes active and leaves the deny list."""
    card = await registry_service.card_for_update(session, card_no)
    registry_service.require_action(card, CardAction.UNBLOCK)
    card.status = CardStatus.ACTIVE
    card.status_changed_at = utc_now()
    version = await lists_service.allow_card(session, card_no, f"unblocked: {card_no}")
    registry_service.add_event(
        session, card_no, CardEventKind.UNBLOCKED, actor, reason, None, [], card.status_changed_at
    )
    await session.flush()
    return card, version


async def replace_card(
    session: AsyncSession,
    ledger: LedgerPort | None,
    old_card_no: str,
    new_card_no: str,
    actor: str,
    reason: str,
) -> CardReplacement:
    """Issue `new_card_no` to the same holder; the old card is denied at once, its deposit moves
    now, and its balance moves (as a pending load) once its last taps have cleared."""
    old = await registry_service.card_for_update(session, old_card_no)
    registry_service.require_action(old, CardAction.REPLACE)
    if old_card_no == new_card_no:  # the number is taken, by the old card itself
        raise Conflict(f"card {new_card_no} already exists: the new card must have another number")
    if await registry_repository.card_by_no(session, new_card_no) is not None:
        raise Conflict(f"card {new_card_no} already exists")
    now = utc_now()
    new = Card(
        card_no=new_card_no,
        card_type=old.card_type,
        holder_id=old.holder_id,
        holder_name=old.holder_name,
        scheme=old.scheme,
        status=CardStatus.ACTIVE,
        deposit_fen=old.deposit_fen,
        replaced_by=None,
        replaces=old_card_no,
        issued_at=now,
        status_changed_at=now,
    )
    session.add(new)
    await registry_service.flush_unique(session, f"card {new_card_no} already exists")
    old.replaced_by = new_card_no
    version = await _set_status(
        session, old, CardStatus.REPLACED, CardEventKind.REPLACEMENT_REQUESTED, actor, reason
    )
    transfer_ids = await registry_service.move_money(
        session,
        ledger,
        [old_card_no, new_card_no],
        money.deposit_move_transfers(old_card_no, new_card_no, old.deposit_fen),
    )
    registry_service.add_event(
        session,
        new_card_no,
        CardEventKind.ISSUED,
        actor,
        f"replaces {old_card_no}",
        old.deposit_fen,
        transfer_ids,
        now,
    )
    replacement = CardReplacement(
        old_card_no=old_card_no,
        new_card_no=new_card_no,
        state=ReplacementState.WAITING,
        deny_list_version=version,
        requested_at=now,
        moved_at=None,
        moved_fen=None,
        load_id=None,
    )
    session.add(replacement)
    await session.flush()
    return replacement


async def replacement_ready(
    session: AsyncSession, replacement: CardReplacement, now: datetime
) -> bool:
    """True once the old card can take no more taps and none of its taps wait for clearing."""
    if await ingest_repository.received_tap_count(session, replacement.old_card_no) > 0:
        return False
    if now >= replacement.requested_at + REPLACEMENT_HOLD_MAX:
        return True
    coverage = await lists_service.deny_list_coverage(session, replacement.deny_list_version)
    if coverage.terminals_behind or coverage.reached_all_at is None:
        return (
            coverage.terminals_active == 0 and now >= replacement.requested_at + REPLACEMENT_SETTLE
        )
    return now >= coverage.reached_all_at + REPLACEMENT_SETTLE


async def complete_replacements(
    session: AsyncSession, ledger: LedgerPort, *, now: datetime | None = None
) -> list[CardReplacement]:
    """Move the balance of every replaced card that is ready; idempotent (Celery/beat-safe)."""
    now = now or utc_now()
    done = []
    for replacement in await registry_repository.waiting_replacements(
        session, REPLACEMENTS_PER_RUN_MAX
    ):
        if not await replacement_ready(session, replacement, now):
            continue
        # One replacement the ledger refuses must not hold back the others: a savepoint each.
        try:
            async with session.begin_nested():
                done.append(await _move_balance(session, ledger, replacement, now))
        except money.LedgerRefused as error:
            log.warning("replacement of %s not moved: %s", replacement.old_card_no, error.detail)
    return done


async def _move_balance(
    session: AsyncSession, ledger: LedgerPort, replacement: CardReplacement, now: datetime
) -> CardReplacement:
    conn = await session.connection()
    old_no, new_no = replacement.old_card_no, replacement.new_card_no
    await money.open_card_accounts(ledger, [old_no, new_no], conn=conn)
    balance = await money.card_balance_fen(ledger, old_no, conn=conn) or 0
    transfer_ids = await money.post(
        ledger, money.balance_move_transfers(old_no, new_no, balance), conn=conn
    )
    load_id = None
    if balance > 0:
        load_id = f"replace-{old_no}"
        await lists_service.add_pending_load(
            session, load_id=load_id, card_no=new_no, amount_fen=balance, source="replacement"
        )
    replacement.state = ReplacementState.DONE
    replacement.moved_at = now
    replacement.moved_fen = balance
    replacement.load_id = load_id
    registry_service.add_event(
        session,
        old_no,
        CardEventKind.BALANCE_MOVED,
        "system",
        f"to {new_no}",
        balance,
        transfer_ids,
        now,
    )
    await session.flush()
    return replacement


async def refund_card(
    session: AsyncSession,
    ledger: LedgerPort | None,
    card_no: str,
    actor: str,
    reason: str,
    paid_by: str,
) -> tuple[Card, int]:
    """A returned card: its balance and deposit are paid back and it is denied for good.

    Refused while any of its taps still wait for clearing: the balance would be wrong.
    """
    card = await registry_service.card_for_update(session, card_no)
    registry_service.require_action(card, CardAction.REFUND)
    if await ingest_repository.received_tap_count(session, card_no) > 0:
        raise CardHasUnclearedTaps(
            f"card {card_no} has taps not yet cleared; run clearing, then refund"
        )
    if ledger is None:
        raise Unavailable("the ledger is not available: card money cannot move")
    conn = await session.connection()
    await money.open_card_accounts(ledger, [card_no], conn=conn)
    states = await ledger.lookup_accounts(
        [account_id(chart.card(card_no)), account_id(chart.card_deposit(card_no))], conn=conn
    )
    balances = {state.id: state.balance.credit_balance for state in states}
    balance = balances.get(account_id(chart.card(card_no)), 0)
    deposit = balances.get(account_id(chart.card_deposit(card_no)), 0)
    transfer_ids = await money.post(
        ledger, money.refund_transfers(card_no, balance, deposit, paid_by), conn=conn
    )
    version = await _set_status(
        session,
        card,
        CardStatus.REFUNDED,
        CardEventKind.REFUNDED,
        actor,
        reason,
        amount_fen=balance + deposit,
        transfer_ids=transfer_ids,
    )
    return card, version


async def replacement_of(session: AsyncSession, old_card_no: str) -> CardReplacement:
    replacement = await registry_repository.replacement_of(session, old_card_no)
    if replacement is None:
        raise NotFound(f"card {old_card_no} has no replacement")
    return replacement


async def _set_status(
    session: AsyncSession,
    card: Card,
    status: CardStatus,
    kind: CardEventKind,
    actor: str,
    reason: str,
    *,
    amount_fen: int | None = None,
    transfer_ids: list[int] | None = None,
) -> int:
    """Set a denying status: the card goes on the deny list in the same transaction."""
    now = utc_now()
    card.status = status
    card.status_changed_at = now
    version = await lists_service.deny_card(
        session, card.card_no, f"{status.value}: {card.card_no}"
    )
    registry_service.add_event(
        session, card.card_no, kind, actor, reason, amount_fen, transfer_ids or [], now
    )
    await session.flush()
    return version
