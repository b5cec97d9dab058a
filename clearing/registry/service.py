"""Registry rules: participants, terminals and cards, their issue and the money paid for it.

What happens to a card after its issue (lost, blocked, replaced, refunded) is the card
workflow's (clearing/cards), which also moves the deny list.

Who may see what: admin and finance see everything; an operator sees its own participant
and terminals; residents reach cards through the ones linked to their account (clearing/cards
and clearing/residents: the registry's holder_id is the name on the card, not a login). Card money
moves through the ledger on the caller's connection, in the caller's transaction, so a card
change and its transfers commit or roll back together. Never commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.auth import service as auth_service
from clearing.auth.models import ApiToken, Role
from clearing.auth.service import Principal, require_role
from clearing.db.base import utc_now
from clearing.errors import Conflict, InvalidRequest, NotFound, Unavailable
from clearing.registry import money, repository
from clearing.registry.lifecycle import CardAction, allowed_from, next_status
from clearing.registry.models import (
    Card,
    CardEvent,
    CardEventKind,
    CardStatus,
    Participant,
    ParticipantStatus,
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
from ledger import Transfer
from ledger.port import LedgerPort

log = logging.getLogger("clearing.registry")

STAFF = (Role.ADMIN, Role.FINANCE)
ISSUE_BATCH_MAX = 2000  # cards per personalisation run (≤ 4,000 transfers: one ledger batch)


class CardStateConflict(Conflict):
    code = "card_state_conflict"
    title = "The card is not in a state that allows this"


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
    await flush_unique(session, f"participant {body.code} already exists")
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
    await _key_is_free(session, body.public_key, body.terminal_id)
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
    await flush_unique(session, f"terminal {body.terminal_id} already exists")
    return terminal


async def _key_is_free(session: AsyncSession, public_key: str, terminal_id: str) -> None:
    """One key, one terminal: a shared key would let one terminal sign as the other."""
    holder = await repository.terminal_by_public_key(session, public_key)
    if holder is not None and holder.terminal_id != terminal_id:
        raise Conflict(f"terminal {holder.terminal_id} already has this public key")


async def update_terminal(
    session: AsyncSession, terminal_id: str, body: TerminalUpdate
) -> Terminal:
    terminal = await repository.terminal_by_id(session, terminal_id)
    if terminal is None:
        raise NotFound(f"no terminal {terminal_id}")
    if body.public_key is not None and "public_key" in body.model_fields_set:
        await _key_is_free(session, body.public_key, terminal_id)
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
    session: AsyncSession, principal: Principal, card_no: str, ledger: LedgerPort | None
) -> CardView:
    await visible_card(session, principal, card_no)
    return await card_view(session, card_no, ledger)


async def card_view(session: AsyncSession, card_no: str, ledger: LedgerPort | None) -> CardView:
    """A card, its balance and its events, for a caller already allowed to see it."""
    card = await repository.card_by_no(session, card_no)
    if card is None:
        raise NotFound(f"no card {card_no}")
    balance = None
    if ledger is not None:
        balance = await money.card_balance_fen(ledger, card_no, conn=await session.connection())
    return CardView(card, balance, await repository.card_events(session, card_no))


async def list_cards(
    session: AsyncSession, principal: Principal, *, limit: int, offset: int
) -> list[Card]:
    """Staff (admin, finance): every card, paged. Residents: clearing.cards.service.list_cards."""
    require_role(principal, Role.ADMIN, Role.FINANCE)
    return await repository.list_cards(session, holder_id=None, limit=limit, offset=offset)


async def visible_card(session: AsyncSession, principal: Principal, card_no: str) -> Card:
    """Staff (admin, finance) see any card. Residents: clearing.cards.service.visible_card."""
    require_role(principal, Role.ADMIN, Role.FINANCE)
    card = await repository.card_by_no(session, card_no)
    if card is None:
        raise NotFound(f"no card {card_no}")
    return card


# -- cards: life -------------------------------------------------------------------------------


async def issue_card(
    session: AsyncSession, ledger: LedgerPort | None, body: CardIssue, actor: str
) -> Card:
    """A new active card; its deposit and first load are paid in (cash or bank)."""
    return (await issue_cards(session, ledger, [body], actor))[0]


async def issue_cards(
    session: AsyncSession, ledger: LedgerPort | None, bodies: list[CardIssue], actor: str
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
    await flush_unique(session, "a card of this run already exists")
    per_card = [
        money.issue_transfers(body.card_no, body.deposit_fen, body.first_load_fen, body.paid_by)
        for body in bodies
    ]
    moving = [body.card_no for body, transfers in zip(bodies, per_card, strict=True) if transfers]
    transfer_ids = await move_money(
        session, ledger, moving, [t for transfers in per_card for t in transfers]
    )
    ids = iter(transfer_ids)
    for body, transfers in zip(bodies, per_card, strict=True):
        add_event(
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


async def card_events(session: AsyncSession, card_no: str) -> list[CardEvent]:
    return await repository.card_events(session, card_no)


# -- helpers -----------------------------------------------------------------------------------


async def card_for_update(session: AsyncSession, card_no: str) -> Card:
    card = await repository.card_for_update(session, card_no)
    if card is None:
        raise NotFound(f"no card {card_no}")
    return card


def require_action(card: Card, action: CardAction) -> None:
    if next_status(card.status, action) is None:
        names = ", ".join(sorted(status.value for status in allowed_from(action)))
        raise CardStateConflict(
            f"card {card.card_no} is {card.status.value}; {action.value} needs one of: {names}"
        )


def add_event(
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


async def move_money(
    session: AsyncSession,
    ledger: LedgerPort | None,
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


async def flush_unique(session: AsyncSession, message: str) -> None:
    """Flush; a unique violation from a concurrent insert becomes a 409."""
    try:
        await session.flush()
    except IntegrityError as error:
        raise Conflict(message) from error
