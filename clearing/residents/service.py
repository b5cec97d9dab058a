"""Residents and their cards: linking a card by proof of holding it, unlinking, and what a
resident may read of their linked cards (balances, pending loads, cleared history).

The rule of ownership: a card has at most one open link, so one resident at a time (a family
shares by linking every member's card to one account). A resident reaches only cards they
have linked; any other card number answers NotFound exactly as a number never issued, so a
resident cannot learn which cards exist. Wrong proofs are counted per resident and per card
(rules.retry_after_s). Workflows acting for a resident (top-ups, bills) call
`require_linked_card`. Never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.auth.service import Principal
from clearing.books import chart
from clearing.db.base import utc_now
from clearing.errors import NotFound
from clearing.registry.models import Card, CardStatus
from clearing.residents import repository, rules
from clearing.residents.errors import (
    CardLinkedElsewhere,
    CardLinkLocked,
    CardNotLinkable,
    CardNotUsable,
    CardProofWrong,
)
from clearing.residents.models import AttemptKind, CardLink, FailedAttempt, Resident
from clearing.residents.repository import ClearedTapRow, PendingLoadRow
from clearing.settings import Settings
from ledger import account_id
from ledger.port import LedgerPort


@dataclass(frozen=True, slots=True)
class ResidentPrincipal:
    """A signed-in resident: their id (the access token's subject) and that token's row id."""

    resident_id: str
    token_pk: int
    principal: Principal

    @property
    def actor(self) -> str:
        return f"resident:{self.resident_id}"


@dataclass(frozen=True, slots=True)
class CardMoney:
    balance_fen: int | None  # card:<no> in the books (None: no ledger, or never opened)
    pending_fen: int | None  # card-pending:<no>: paid, not yet written onto the card


@dataclass(frozen=True, slots=True)
class LinkedCardView:
    link: CardLink
    card: Card
    money: CardMoney


@dataclass(frozen=True, slots=True)
class CardDetailView:
    link: CardLink
    card: Card
    money: CardMoney
    pending_loads: list[PendingLoadRow]
    last_tap: ClearedTapRow | None


def _no_card(card_no: str) -> NotFound:
    return NotFound(f"no card {card_no} is linked to your account: link it first")


async def account_of(session: AsyncSession, resident_id: str) -> Resident | None:
    """The account a resident token names, or None (a token issued without an account)."""
    return await repository.resident_by_id(session, resident_id)


async def get_resident(session: AsyncSession, resident_id: str) -> Resident:
    resident = await repository.resident_by_id(session, resident_id)
    if resident is None:
        raise NotFound(f"no resident {resident_id}")
    return resident


async def list_residents(session: AsyncSession, *, limit: int, offset: int) -> list[Resident]:
    return await repository.list_residents(session, limit=limit, offset=offset)


async def find_resident(session: AsyncSession, id_or_login: str) -> Resident:
    """A resident by id (res_…) or by login in any of its forms (staff at a counter)."""
    resident = await repository.resident_by_id(session, id_or_login)
    if resident is None:
        try:
            login = rules.normalise_login(id_or_login)
        except rules.LoginInvalid:
            login = None
        if login is not None:
            resident = await repository.resident_by_login(session, login.value)
    if resident is None:
        raise NotFound(f"no resident {id_or_login}: give a resident id (res_…) or a login")
    return resident


# -- what other workflows ask --------------------------------------------------------------------


async def linked_cards(session: AsyncSession, resident_id: str) -> list[Card]:
    """Every card this resident has linked (whatever its state), in the order they were linked."""
    return [card for _, card in await repository.linked_cards(session, resident_id)]


async def linked_resident(session: AsyncSession, card_no: str) -> str | None:
    """The resident who has linked this card now, or None (nobody has)."""
    link = await repository.open_link(session, card_no)
    return None if link is None else link.resident_id


async def require_linked_card(session: AsyncSession, resident_id: str, card_no: str) -> Card:
    """The card, if this resident has linked it and it is active. NotFound if it is not linked
    to them (as for a number never issued); CardNotUsable (409) if lost, blocked, replaced or
    refunded, saying what to do."""
    found = await repository.linked_card(session, resident_id, card_no)
    if found is None:
        raise _no_card(card_no)
    card = found[1]
    if card.status is not CardStatus.ACTIVE:
        raise CardNotUsable(_state_detail(card))
    return card


def _state_detail(card: Card) -> str:
    if card.status is CardStatus.LOST:
        return f"card {card.card_no} is reported lost: if found, have it unblocked at a counter"
    if card.status is CardStatus.BLOCKED:
        return f"card {card.card_no} is blocked: ask at a service counter why"
    if card.status is CardStatus.REPLACED:
        target = f" by {card.replaced_by}" if card.replaced_by else ""
        return f"card {card.card_no} was replaced{target}: link the new card instead"
    return f"card {card.card_no} was returned and refunded: it can no longer be used"


# -- linking -----------------------------------------------------------------------------------


async def _evidence(
    session: AsyncSession, ledger: LedgerPort | None, card: Card
) -> rules.CardEvidence:
    last_tap = await repository.last_cleared_tap(session, card.card_no)
    last_load = await repository.last_cleared_load(session, card.card_no)
    if last_load is not None:
        last_load_fen: int | None = last_load.amount_fen
    else:
        issued = await repository.issued_amount_fen(session, card.card_no)
        last_load_fen = None if issued is None else issued - card.deposit_fen
        if last_load_fen is not None and last_load_fen <= 0:
            last_load_fen = None  # issued without a first load: no load to name
    money = (await card_money(session, ledger, [card.card_no]))[card.card_no]
    return rules.CardEvidence(
        last_balance_after_fen=None if last_tap is None else last_tap.balance_after_fen,
        ledger_balance_fen=money.balance_fen,
        last_load_fen=last_load_fen,
    )


async def _link_wait_s(
    session: AsyncSession, settings: Settings, resident_id: str, card_no: str
) -> int | None:
    now = utc_now()
    window = timedelta(seconds=settings.card_link_window_s)
    waits = []
    for key in ({"resident_id": resident_id}, {"card_no": card_no}):
        failures = await repository.failures_since(session, AttemptKind.LINK, now - window, **key)
        waits.append(
            rules.retry_after_s(
                failures, now=now, failures_max=settings.card_link_failures_max, window=window
            )
        )
    known = [wait for wait in waits if wait is not None]
    return max(known) if known else None


async def link_card(
    session: AsyncSession,
    settings: Settings,
    ledger: LedgerPort | None,
    resident_id: str,
    card_no: str,
    proof: tuple[rules.ProofKind, int],
    label: str | None,
) -> tuple[CardLink, Card, bool]:
    """Link a card the resident proves to hold; (link, card, created). Already linked to them:
    the existing link (created False). A wrong proof, or a number that names no card, is
    recorded before CardProofWrong is raised: the caller commits it although the request fails."""
    await repository.lock_resident(session, resident_id)
    wait_s = await _link_wait_s(session, settings, resident_id, card_no)
    if wait_s is not None:
        raise CardLinkLocked(
            f"{settings.card_link_failures_max} wrong card proofs within "
            f"{settings.card_link_window_s // 60} minutes: try again in {wait_s} s",
            wait_s,
        )
    card = await repository.card_by_no(session, card_no)
    kind, amount_fen = proof
    if card is None or not rules.proof_matches(
        kind, amount_fen, await _evidence(session, ledger, card)
    ):
        session.add(
            FailedAttempt(
                kind=AttemptKind.LINK, resident_id=resident_id, card_no=card_no, at=utc_now()
            )
        )
        await session.flush()
        raise CardProofWrong(
            f"card {card_no} and this proof do not match: give the card's balance in fen after "
            "its last tap (kind balance) or the amount in fen of its last load (kind last_load); "
            f"taps of the last hours may not be cleared yet. {settings.card_link_failures_max} "
            f"wrong tries within {settings.card_link_window_s // 60} minutes make you wait"
        )
    if card.status is not CardStatus.ACTIVE:
        raise CardNotLinkable(_state_detail(card))
    existing = await repository.open_link(session, card_no)
    if existing is not None:
        if existing.resident_id == resident_id:
            return existing, card, False
        raise CardLinkedElsewhere(
            f"card {card_no} is linked to another account: that account must unlink it first "
            "(or, if the card is yours now, ask at a service counter)"
        )
    link = CardLink(
        resident_id=resident_id, card_no=card_no, label=label, linked_at=utc_now(), unlinked_at=None
    )
    session.add(link)
    try:
        await session.flush()
    except IntegrityError:
        raise CardLinkedElsewhere(
            f"card {card_no} was linked by another account a moment ago"
        ) from None
    return link, card, True


async def unlink_card(session: AsyncSession, resident_id: str, card_no: str) -> CardLink:
    """Close this resident's link to the card (whatever the card's state)."""
    found = await repository.linked_card(session, resident_id, card_no)
    if found is None:
        raise _no_card(card_no)
    link = found[0]
    link.unlinked_at = utc_now()
    await session.flush()
    return link


async def release_card(session: AsyncSession, card_no: str) -> CardLink:
    """Staff at a counter: close the card's open link, whoever holds it (a card sold on, a
    family split), so its new holder can link it."""
    link = await repository.open_link(session, card_no)
    if link is None:
        raise NotFound(f"card {card_no} is not linked to any resident")
    link.unlinked_at = utc_now()
    await session.flush()
    return link


# -- reading -----------------------------------------------------------------------------------


async def card_money(
    session: AsyncSession, ledger: LedgerPort | None, card_nos: list[str]
) -> dict[str, CardMoney]:
    """card:<no> and card-pending:<no> of each card, in one ledger lookup."""
    if ledger is None or not card_nos:
        return {card_no: CardMoney(None, None) for card_no in card_nos}
    names = {card_no: (chart.card(card_no), chart.card_pending(card_no)) for card_no in card_nos}
    ids = [account_id(name) for pair in names.values() for name in pair]
    states: Any = await ledger.lookup_accounts(ids, conn=await session.connection())
    by_id = {state.id: state.balance.credit_balance for state in states}
    return {
        card_no: CardMoney(by_id.get(account_id(card)), by_id.get(account_id(pending)))
        for card_no, (card, pending) in names.items()
    }


async def my_cards(
    session: AsyncSession, ledger: LedgerPort | None, resident_id: str
) -> list[LinkedCardView]:
    pairs = await repository.linked_cards(session, resident_id)
    money = await card_money(session, ledger, [card.card_no for _, card in pairs])
    return [LinkedCardView(link, card, money[card.card_no]) for link, card in pairs]


async def my_card(
    session: AsyncSession, ledger: LedgerPort | None, resident_id: str, card_no: str
) -> CardDetailView:
    found = await repository.linked_card(session, resident_id, card_no)
    if found is None:
        raise _no_card(card_no)
    link, card = found
    money = (await card_money(session, ledger, [card_no]))[card_no]
    loads = (await repository.pending_loads(session, [card_no]))[card_no]
    last_tap = await repository.last_cleared_tap(session, card_no)
    return CardDetailView(link, card, money, loads, last_tap)


async def my_card_history(
    session: AsyncSession, resident_id: str, card_no: str, *, limit: int, offset: int
) -> list[ClearedTapRow]:
    if await repository.linked_card(session, resident_id, card_no) is None:
        raise _no_card(card_no)
    return await repository.cleared_taps(session, card_no, limit=limit, offset=offset)
