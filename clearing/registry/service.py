"""Registry rules: participants, terminals and cards, with each card's life and its money.

Who may see what: admin and finance see everything; an operator sees its own participant
and terminals; a resident sees only cards whose holder_id is the token's subject. Card money
moves through the ledger on the caller's connection, in the caller's transaction, so a card
change and its transfers commit or roll back together. Never commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.auth import service as auth_service
from clearing.auth.models import ApiToken, Role
from clearing.auth.service import Principal, require_role
from clearing.books import chart
from clearing.db.base import utc_now
from clearing.errors import Conflict, InvalidRequest, NotFound, Unavailable
from clearing.lists import service as lists_service
from clearing.lists.service import deny_list_coverage
from clearing.registry import money, repository
from clearing.registry.lifecycle import CardAction, allowed_from, next_status
from clearing.registry.models import (
    Card,
    CardEvent,
    CardEventKind,
    CardReplacement,
    CardStatus,
    Participant,
    ParticipantStatus,
    ReplacementState,
    Terminal,
    TerminalStatus,
)
from clearing.registry.schemas import (
    CardIssue,
    ParticipantCreate,
    ParticipantUpdate,
    TerminalCreate,
    TerminalUpdate,
)
from clearing.settings import same_bank_account
from ledger import Transfer, account_id

log = logging.getLogger("clearing.registry")

STAFF = (Role.ADMIN, Role.FINANCE)
# After every active terminal holds the deny list that refuses the old card, wait this long
# for journals written before that fetch to be uploaded, then move the balance.
REPLACEMENT_SETTLE = timedelta(hours=1)
# A terminal that never fetches again (broken, stolen) must not hold a resident's money forever.
REPLACEMENT_HOLD_MAX = timedelta(days=7)
REPLACEMENTS_PER_RUN_MAX = 500
ISSUE_BATCH_MAX = 2000  # cards per personalisation run (≤ 4,000 transfers: one ledger batch)


class CardStateConflict(Conflict):
    code = "card_state_conflict"
    title = "The card is not in a state that allows this"


class CardHasUnclearedTaps(Conflict):
    code = "card_has_uncleared_taps"
    title = "The card still has taps waiting to be cleared"


class BankAccountIsEscrow(InvalidRequest):
    code = "participant_account_is_escrow"
    title = "A participant's bank account is the escrow account"


# -- participants ------------------------------------------------------------------------------


def _refuse_escrow(bank_account: str | None, escrow_account: str) -> None:
    """The escrow account pays every payout: a participant paid into it would be paid nothing."""
    if bank_account is not None and same_bank_account(bank_account, escrow_account):
        raise BankAccountIsEscrow(
            f"{bank_account} is the card company's escrow account, which the payouts are paid "
            "from; give the participant its own settlement account"
        )


async def create_participant(
    session: AsyncSession, body: ParticipantCreate, *, escrow_account: str
) -> Participant:
    _refuse_escrow(body.bank_account, escrow_account)
    if await repository.participant_by_code(session, body.code) is not None:
        raise Conflict(f"participant {body.code} already exists")
    participant = Participant(
        **body.model_dump(), status=ParticipantStatus.ACTIVE, created_at=utc_now()
    )
    session.add(participant)
    await _flush_unique(session, f"participant {body.code} already exists")
    return participant


async def update_participant(
    session: AsyncSession, code: str, body: ParticipantUpdate, *, escrow_account: str
) -> Participant:
    _refuse_escrow(body.bank_account, escrow_account)
    participant = await _participant(session, code)
    for field, value in body.model_dump(exclude_unset=True).items():
        if value is None:
            raise InvalidRequest(f"{field} may not be set to null")
        setattr(participant, field, value)
    await session.flush()
    return participant


async def get_participant(session: AsyncSession, principal: Principal, code: str) -> Participant:
    require_role(principal, Role.ADMIN, Role.FINANCE, Role.OPERATOR)
    participant = await _participant(session, code)
    if principal.role is Role.OPERATOR and participant.id != principal.participant_id:
        raise NotFound(f"no participant {code}")  # others' existence is not disclosed
    return participant


async def list_participants(
    session: AsyncSession, principal: Principal, *, limit: int, offset: int
) -> list[Participant]:
    require_role(principal, Role.ADMIN, Role.FINANCE, Role.OPERATOR)
    only = principal.participant_id if principal.role is Role.OPERATOR else None
    return await repository.list_participants(session, only_id=only, limit=limit, offset=offset)


async def issue_token(
    session: AsyncSession,
    role: Role,
    *,
    subject: str | None,
    label: str,
    expires_at: datetime | None = None,
) -> tuple[str, ApiToken]:
    """A new token (shown once) for `role`; an operator token's subject is a participant code."""
    participant_id = None
    if role is Role.OPERATOR and subject:
        participant = await repository.participant_by_code(session, subject)
        if participant is None:
            raise NotFound(f"no participant with code {subject!r}")
        participant_id = participant.id
    return await auth_service.issue_token(
        session,
        role,
        subject=subject,
        label=label,
        expires_at=expires_at,
        participant_id=participant_id,
    )


async def _participant(session: AsyncSession, code: str) -> Participant:
    participant = await repository.participant_by_code(session, code)
    if participant is None:
        raise NotFound(f"no participant {code}")
    return participant


# -- terminals ---------------------------------------------------------------------------------


async def register_terminal(session: AsyncSession, body: TerminalCreate) -> Terminal:
    participant = await _participant(session, body.participant)
    if await repository.terminal_by_id(session, body.terminal_id) is not None:
        raise Conflict(f"terminal {body.terminal_id} already exists")
    terminal = Terminal(
        terminal_id=body.terminal_id,
        participant_id=participant.id,
        kind=body.kind,
        line=body.line,
        public_key=body.public_key.lower(),
        status=TerminalStatus.ACTIVE,
        seq_high=None,
        created_at=utc_now(),
    )
    session.add(terminal)
    await _flush_unique(session, f"terminal {body.terminal_id} already exists")
    return terminal


async def update_terminal(
    session: AsyncSession, terminal_id: str, body: TerminalUpdate
) -> Terminal:
    terminal = await repository.terminal_by_id(session, terminal_id)
    if terminal is None:
        raise NotFound(f"no terminal {terminal_id}")
    for field, value in body.model_dump(exclude_unset=True).items():
        if value is None:
            raise InvalidRequest(f"{field} may not be set to null")
        setattr(terminal, field, value.lower() if field == "public_key" else value)
    await session.flush()
    return terminal


async def get_terminal(session: AsyncSession, principal: Principal, terminal_id: str) -> Terminal:
    require_role(principal, Role.ADMIN, Role.FINANCE, Role.OPERATOR)
    terminal = await repository.terminal_by_id(session, terminal_id)
    if terminal is None or (
        principal.role is Role.OPERATOR and terminal.participant_id != principal.participant_id
    ):
        raise NotFound(f"no terminal {terminal_id}")
    return terminal


async def list_terminals(
    session: AsyncSession, principal: Principal, *, limit: int, offset: int
) -> list[Terminal]:
    require_role(principal, Role.ADMIN, Role.FINANCE, Role.OPERATOR)
    only = principal.participant_id if principal.role is Role.OPERATOR else None
    return await repository.list_terminals(session, participant_id=only, limit=limit, offset=offset)


async def participant_codes(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    codes = {}
    for participant_id in ids:
        participant = await repository.participant_by_id(session, participant_id)
        if participant is not None:
            codes[participant_id] = participant.code
    return codes


# -- cards: reading ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CardView:
    card: Card
    balance_fen: int | None
    events: list[CardEvent]


async def get_card(
    session: AsyncSession, principal: Principal, card_no: str, ledger: money.CardLedger | None
) -> CardView:
    card = await _visible_card(session, principal, card_no)
    balance = None
    if ledger is not None:
        balance = await money.card_balance_fen(ledger, card_no, conn=await session.connection())
    return CardView(card, balance, await repository.card_events(session, card_no))


async def list_cards(
    session: AsyncSession, principal: Principal, *, limit: int, offset: int
) -> list[Card]:
    require_role(principal, Role.ADMIN, Role.FINANCE, Role.RESIDENT)
    holder = principal.subject if principal.role is Role.RESIDENT else None
    return await repository.list_cards(session, holder_id=holder, limit=limit, offset=offset)


async def _visible_card(session: AsyncSession, principal: Principal, card_no: str) -> Card:
    require_role(principal, Role.ADMIN, Role.FINANCE, Role.RESIDENT)
    card = await repository.card_by_no(session, card_no)
    if card is None:
        raise NotFound(f"no card {card_no}")
    if principal.role is Role.RESIDENT and card.holder_id != principal.subject:
        # 404 as for a number never issued: a resident token must not find out which card
        # numbers exist (403 here, 404 there would let it enumerate them)
        raise NotFound(f"no card {card_no}")
    return card


# -- cards: life -------------------------------------------------------------------------------


async def issue_card(
    session: AsyncSession, ledger: money.CardLedger | None, body: CardIssue, actor: str
) -> Card:
    """A new active card; its deposit and first load are paid in (cash or bank)."""
    return (await issue_cards(session, ledger, [body], actor))[0]


async def issue_cards(
    session: AsyncSession, ledger: money.CardLedger | None, bodies: list[CardIssue], actor: str
) -> list[Card]:
    """Issue a personalisation run of cards at once: one insert, one round of ledger accounts
    and transfers (each card's deposit and first load linked: all or nothing per card, and
    the whole run in the caller's transaction)."""
    if not 1 <= len(bodies) <= ISSUE_BATCH_MAX:
        raise InvalidRequest(f"issue 1 … {ISSUE_BATCH_MAX} cards at a time")
    numbers = [body.card_no for body in bodies]
    repeated = sorted({number for number in numbers if numbers.count(number) > 1})
    if repeated:
        # Like a number already issued: the second issue of it conflicts with the first (409).
        raise Conflict(f"card {repeated[0]} appears twice in this run: issue each number once")
    existing = await repository.existing_card_nos(session, numbers)
    if existing:
        raise Conflict(f"card {sorted(existing)[0]} already exists ({len(existing)} in this run)")
    now = utc_now()
    cards = [
        Card(
            card_no=body.card_no,
            card_type=body.card_type,
            holder_id=body.holder_id,
            holder_name=body.holder_name,
            scheme=body.scheme,
            status=CardStatus.ACTIVE,
            deposit_fen=body.deposit_fen,
            replaced_by=None,
            replaces=None,
            issued_at=now,
            status_changed_at=now,
        )
        for body in bodies
    ]
    session.add_all(cards)
    await _flush_unique(session, "a card of this run already exists")
    per_card = [
        money.issue_transfers(body.card_no, body.deposit_fen, body.first_load_fen, body.paid_by)
        for body in bodies
    ]
    moving = [body.card_no for body, transfers in zip(bodies, per_card, strict=True) if transfers]
    transfer_ids = await _move_money(
        session, ledger, moving, [t for transfers in per_card for t in transfers]
    )
    ids = iter(transfer_ids)
    for body, transfers in zip(bodies, per_card, strict=True):
        _event(
            session,
            body.card_no,
            CardEventKind.ISSUED,
            actor,
            f"paid by {body.paid_by}",
            body.deposit_fen + body.first_load_fen,
            [next(ids) for _ in transfers],
            now,
        )
    await session.flush()
    return cards


async def report_lost(
    session: AsyncSession, principal: Principal, card_no: str, reason: str
) -> tuple[Card, int]:
    """The card goes on the deny list at once; returns it and the deny-list version."""
    require_role(principal, Role.ADMIN, Role.RESIDENT)
    await _visible_card(session, principal, card_no)
    card = await _card_for_update(session, card_no)
    if card.status is CardStatus.LOST:
        return card, await lists_service.deny_card(session, card_no, f"lost: {card_no}")
    _require(card, CardAction.REPORT_LOST)
    version = await _set_status(
        session, card, CardStatus.LOST, CardEventKind.REPORTED_LOST, principal.actor, reason
    )
    return card, version


async def block_card(
    session: AsyncSession, card_no: str, actor: str, reason: str
) -> tuple[Card, int]:
    card = await _card_for_update(session, card_no)
    if card.status is CardStatus.BLOCKED:
        return card, await lists_service.deny_card(session, card_no, f"blocked: {card_no}")
    _require(card, CardAction.BLOCK)
    version = await _set_status(
        session, card, CardStatus.BLOCKED, CardEventKind.BLOCKED, actor, reason
    )
    return card, version


async def unblock_card(
    session: AsyncSession, card_no: str, actor: str, reason: str
) -> tuple[Card, int]:
    """A blocked card, or a lost card found again, becomes active and leaves the deny list."""
    card = await _card_for_update(session, card_no)
    _require(card, CardAction.UNBLOCK)
    card.status = CardStatus.ACTIVE
    card.status_changed_at = utc_now()
    version = await lists_service.allow_card(session, card_no, f"unblocked: {card_no}")
    _event(
        session, card_no, CardEventKind.UNBLOCKED, actor, reason, None, [], card.status_changed_at
    )
    await session.flush()
    return card, version


async def replace_card(
    session: AsyncSession,
    ledger: money.CardLedger | None,
    old_card_no: str,
    new_card_no: str,
    actor: str,
    reason: str,
) -> CardReplacement:
    """Issue `new_card_no` to the same holder; the old card is denied at once, its deposit moves
    now, and its balance moves (as a pending load) once its last taps have cleared."""
    old = await _card_for_update(session, old_card_no)
    _require(old, CardAction.REPLACE)
    if old_card_no == new_card_no:
        raise InvalidRequest("the new card must have another number")
    if await repository.card_by_no(session, new_card_no) is not None:
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
    await _flush_unique(session, f"card {new_card_no} already exists")
    old.replaced_by = new_card_no
    version = await _set_status(
        session, old, CardStatus.REPLACED, CardEventKind.REPLACEMENT_REQUESTED, actor, reason
    )
    transfer_ids = await _move_money(
        session,
        ledger,
        [old_card_no, new_card_no],
        money.deposit_move_transfers(old_card_no, new_card_no, old.deposit_fen),
    )
    _event(
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
    if await repository.unsettled_tap_count(session, replacement.old_card_no) > 0:
        return False
    if now >= replacement.requested_at + REPLACEMENT_HOLD_MAX:
        return True
    coverage = await deny_list_coverage(session, replacement.deny_list_version)
    if coverage.terminals_behind or coverage.reached_all_at is None:
        return (
            coverage.terminals_active == 0 and now >= replacement.requested_at + REPLACEMENT_SETTLE
        )
    return now >= coverage.reached_all_at + REPLACEMENT_SETTLE


async def complete_replacements(
    session: AsyncSession, ledger: money.CardLedger, *, now: datetime | None = None
) -> list[CardReplacement]:
    """Move the balance of every replaced card that is ready; idempotent (Celery/beat-safe)."""
    now = now or utc_now()
    done = []
    for replacement in await repository.waiting_replacements(session, REPLACEMENTS_PER_RUN_MAX):
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
    session: AsyncSession, ledger: money.CardLedger, replacement: CardReplacement, now: datetime
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
    _event(
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
    ledger: money.CardLedger | None,
    card_no: str,
    actor: str,
    reason: str,
    paid_by: str,
) -> tuple[Card, int]:
    """A returned card: its balance and deposit are paid back and it is denied for good.

    Refused while any of its taps still wait for clearing: the balance would be wrong.
    """
    card = await _card_for_update(session, card_no)
    _require(card, CardAction.REFUND)
    if await repository.unsettled_tap_count(session, card_no) > 0:
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


async def card_events(session: AsyncSession, card_no: str) -> list[CardEvent]:
    return await repository.card_events(session, card_no)


async def replacement_of(session: AsyncSession, old_card_no: str) -> CardReplacement:
    replacement = await repository.replacement_of(session, old_card_no)
    if replacement is None:
        raise NotFound(f"card {old_card_no} has no replacement")
    return replacement


# -- helpers -----------------------------------------------------------------------------------


async def _card_for_update(session: AsyncSession, card_no: str) -> Card:
    card = await repository.card_for_update(session, card_no)
    if card is None:
        raise NotFound(f"no card {card_no}")
    return card


def _require(card: Card, action: CardAction) -> None:
    if next_status(card.status, action) is None:
        names = ", ".join(sorted(status.value for status in allowed_from(action)))
        raise CardStateConflict(
            f"card {card.card_no} is {card.status.value}; {action.value} needs one of: {names}"
        )


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
    _event(session, card.card_no, kind, actor, reason, amount_fen, transfer_ids or [], now)
    await session.flush()
    return version


def _event(
    session: AsyncSession,
    card_no: str,
    kind: CardEventKind,
    actor: str,
    reason: str | None,
    amount_fen: int | None,
    transfer_ids: list[int],
    at: datetime,
) -> None:
    session.add(
        CardEvent(
            card_no=card_no,
            kind=kind,
            actor=actor[:100],
            reason=reason,
            amount_fen=amount_fen,
            transfer_ids=",".join(f"{tid:032x}" for tid in transfer_ids) or None,
            at=at,
        )
    )


async def _move_money(
    session: AsyncSession,
    ledger: money.CardLedger | None,
    card_nos: list[str],
    transfers: list[Transfer],
) -> list[int]:
    if not transfers:
        return []
    if ledger is None:
        raise Unavailable("the ledger is not available: card money cannot move")
    conn = await session.connection()
    await money.open_card_accounts(ledger, card_nos, conn=conn)
    return await money.post(ledger, transfers, conn=conn)


async def _flush_unique(session: AsyncSession, message: str) -> None:
    """Flush; a unique violation from a concurrent insert becomes a 409."""
    try:
        await session.flush()
    except IntegrityError as error:
        raise Conflict(message) from error
