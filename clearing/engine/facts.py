"""One chunk's decision context: what is known about its records, gathered in a few batched
reads through the unit of work, and each record's decision (the pure `decide`, then the card's
shadow balance). Reads only: nothing here writes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from clearing import books
from clearing.engine.decide import (
    CARD_COUNTER_MAX,
    TERMINAL_SEQ_MAX,
    CardInfo,
    Context,
    Decision,
    Outcome,
    PendingLoadInfo,
    PostedTap,
    Purse,
    SplitInfo,
    Tap,
    TerminalInfo,
    decide,
)
from clearing.engine.reasons import QuarantineReason
from clearing.engine.uow import Release, UnitOfWork, card_account
from clearing.records import TapKind
from ledger import Transfer
from ledger.types import BATCH_MAX

# Which records of a chunk have a TAC that verifies (record id -> verified).
TacCheck = Callable[[Sequence[Tap]], dict[int, bool]]


# One per record: slotted, and its transfers an empty tuple until posting sets them (a list made
# by a default factory for every record, posted or not, costs more than the rest of it).
@dataclass(slots=True)
class Pending:
    """One record's decision while its chunk is being built."""

    tap: Tap
    decision: Decision
    previous_reason: str | None = None  # when re-examined from quarantine
    override_action: int | None = None
    transfers: Sequence[Transfer] = ()
    ledger_result: str | None = None
    error: str | None = None  # what raised while deciding it (RECORD_FAILED)


@dataclass(slots=True)
class Facts:
    """What is known about one chunk's records before deciding (gathered in batches)."""

    now: datetime
    terminals: dict[str, TerminalInfo]
    cards: dict[str, CardInfo]
    tac_ok: dict[int, bool]
    by_card: dict[tuple[str, Purse, int], PostedTap]
    by_terminal: dict[tuple[str, int], PostedTap]
    highest: dict[tuple[str, Purse], int]
    splits: dict[tuple[str, str], SplitInfo]
    loads: dict[str, PendingLoadInfo]
    releases: dict[int, Release]
    balances: dict[str, int]
    accounts_seen: set[int] = field(default_factory=set)  # ledger ids that exist


def lookup_safe(tap: Tap) -> bool:
    """The record's keys fit the columns they are looked up in (an inconsistent record's
    counter or serial may not: it is decided without lookups, as RECORD_INCONSISTENT)."""
    return (
        tap.unreadable is None
        and 0 <= tap.card_counter <= CARD_COUNTER_MAX
        and 1 <= tap.terminal_seq <= TERMINAL_SEQ_MAX
    )


async def gather(
    uow: UnitOfWork,
    chunk: Sequence[Tap],
    now: datetime,
    check_tacs: TacCheck,
    known: tuple[dict[str, CardInfo], dict[int, bool]] | None = None,
) -> Facts:
    """What the chunk's decisions need, in a few batched reads (`known`: the cards and TAC
    results read ahead). Records inconsistent in themselves are never looked up (their values
    may be out of any column's range)."""
    terminals = await uow.registry.terminals({t.terminal_id for t in chunk})
    if known is not None:
        cards, tac_ok = known
    else:
        cards, tac_ok = await uow.registry.cards(t.card_no for t in chunk), check_tacs(chunk)
    sound = [t for t in chunk if lookup_safe(t)]
    by_card = {(p.card_no, p.purse, p.card_counter): p for p in await uow.cleared.near(sound)}
    by_terminal = {
        (p.terminal_id, p.terminal_seq): p
        for p in await uow.cleared.by_terminal(t.terminal_key for t in sound)
    }
    greys = [t for t in sound if t.is_grey]
    highest = await uow.cleared.highest_counters((t.card_no, t.purse) for t in greys)
    clinic_keys = [
        (terminals[t.terminal_id].participant_code, t.visit_id)
        for t in sound
        if t.kind is TapKind.CLINIC and t.visit_id and t.terminal_id in terminals
    ]
    splits = await uow.clinic.splits(clinic_keys) if clinic_keys else {}
    load_ids = [t.load_id for t in sound if t.kind is TapKind.LOAD and t.load_id]
    loads = await uow.loads.pending(load_ids) if load_ids else {}
    releases = await uow.cleared.releases([t.id for t in chunk])
    balances, seen = await _available_balances(uow, sound, cards)
    return Facts(
        now, terminals, cards, tac_ok, by_card, by_terminal, highest, splits, loads, releases,
        balances, seen,
    )  # fmt: skip


async def _available_balances(
    uow: UnitOfWork, chunk: Sequence[Tap], cards: dict[str, CardInfo]
) -> tuple[dict[str, int], set[int]]:
    """What each card and pending-load account of the chunk may still spend (by name), and the
    ledger ids of those that exist."""
    names: list[str] = []
    for card_no in sorted({t.card_no for t in chunk if t.card_no in cards}):
        names.append(card_account(card_no))
    for card_no in sorted(
        {t.card_no for t in chunk if t.kind is TapKind.LOAD and t.card_no in cards}
    ):
        names.append(books.card_pending(card_no))
    found: dict[str, tuple[int, int]] = {}
    for start in range(0, len(names), BATCH_MAX):
        found.update(await uow.books.balances(names[start : start + BATCH_MAX]))
    seen = {account for account, _ in found.values()}
    return {name: found[name][1] if name in found else 0 for name in names}, seen


def decide_one(
    tap: Tap, facts: Facts, previous_reason: str | None, subsidy_schemes: dict[str, str]
) -> Pending:
    """One record's decision; a posting one is remembered for the records after it."""
    release = facts.releases.get(tap.id)
    decision = decide(tap, _context(tap, facts, release, subsidy_schemes))
    if decision.outcome.posts:
        decision = check_balance(tap, decision, facts.balances)
    pending = Pending(tap, decision, previous_reason)
    if release is not None:
        pending.override_action = release[0]
    if decision.outcome.posts:
        posted = PostedTap.of(tap)
        facts.by_card[tap.card_key] = posted
        facts.by_terminal[tap.terminal_key] = posted
        if tap.kind is TapKind.LOAD and tap.load_id:
            facts.loads[tap.load_id] = PendingLoadInfo(tap.card_no, tap.amount_fen, "delivered")
    return pending


_NO_OVERRIDES: frozenset[QuarantineReason] = frozenset()


def _context(
    tap: Tap, facts: Facts, release: Release | None, subsidy_schemes: dict[str, str]
) -> Context:
    terminal = facts.terminals.get(tap.terminal_id)
    overrides = _NO_OVERRIDES
    if release is not None and release[1]:
        overrides = frozenset({QuarantineReason(release[1])})
    by_card = facts.by_card
    highest_counter = facts.highest.get((tap.card_no, tap.purse))
    later_posted = highest_counter is not None and highest_counter > tap.card_counter
    if not later_posted and tap.is_grey:
        later_posted = any(
            (tap.card_no, tap.purse, c) in by_card
            for c in range(tap.card_counter + 1, tap.card_counter + 3)
        )
    # Positional, in Context's field order (a record's keywords cost a third more).
    return Context(
        facts.now,  # now
        terminal,  # terminal
        facts.cards.get(tap.card_no),  # card
        facts.tac_ok.get(tap.id, False),  # tac_ok
        by_card.get(tap.card_key),  # same_card_counter
        facts.by_terminal.get(tap.terminal_key),  # same_terminal_seq
        by_card.get((tap.card_no, tap.purse, tap.card_counter - 1)),  # previous
        by_card.get((tap.card_no, tap.purse, tap.card_counter + 1)),  # following
        later_posted,  # later_counter_posted
        facts.splits.get((terminal.participant_code, tap.visit_id))
        if terminal is not None and tap.visit_id
        else None,  # split
        facts.loads.get(tap.load_id) if tap.load_id else None,  # pending_load
        overrides,  # overrides
        subsidy_schemes,  # subsidy_schemes
    )


def check_balance(tap: Tap, decision: Decision, balances: dict[str, int]) -> Decision:
    """A posting decision stands only if the card (or its pending load) can pay it; it then
    spends the shadow balance the records after it in the chunk see."""
    if tap.kind is TapKind.LOAD:
        source = books.card_pending(tap.card_no)
        if balances.get(source, 0) < tap.amount_fen:
            return Decision(Outcome.QUARANTINE, QuarantineReason.CARD_BALANCE_INSUFFICIENT)
        balances[source] -= tap.amount_fen
        target = card_account(tap.card_no)
        balances[target] = balances.get(target, 0) + tap.amount_fen
        return decision
    if tap.amount_fen == 0:
        return decision
    account = card_account(tap.card_no)
    if balances.get(account, 0) < tap.amount_fen:
        return Decision(Outcome.QUARANTINE, QuarantineReason.CARD_BALANCE_INSUFFICIENT)
    balances[account] -= tap.amount_fen
    return decision
