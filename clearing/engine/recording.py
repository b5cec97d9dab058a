"""Recording one chunk's decisions: the cleared taps, the dispositions, the quarantine's audit
rows, the records' new states and the run's counters, all in the chunk's transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.calendar import BusinessCalendar, settlement_day_of
from clearing.engine import repository as repo
from clearing.engine.decide import CardInfo, Outcome, PostedTap, TerminalInfo
from clearing.engine.facts import Pending
from clearing.engine.models import ENGINE_ACTOR, QuarantineAction
from clearing.engine.reasons import QuarantineReason
from clearing.engine.rows import ClearedRow
from clearing.engine.runs import ChunkResult, describe
from clearing.engine.uow import UnitOfWork
from clearing.records import TapKind, TapState
from ledger.errors import invariant


@dataclass
class _Writes:
    """What one chunk writes, gathered record by record, then written in a few statements."""

    cleared: list[ClearedRow] = field(default_factory=list)
    dispositions: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    states: dict[tuple[TapState, str | None], list[int]] = field(
        default_factory=lambda: defaultdict(list)
    )
    delivered_loads: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Days:
    """The business and settlement day of a tap (see clearing/calendar.py)."""

    business_day: Callable[[datetime], date]
    clearing_day: date  # the business day of the chunk's clock reading
    last_settled: date | None


@dataclass
class Prepared:
    """A chunk's writes and counters, built from its decisions before anything is written."""

    result: ChunkResult
    writes: _Writes
    now: datetime


def prepare(
    run_id: int,
    pendings: list[Pending],
    facts: tuple[datetime, dict[str, CardInfo], dict[str, TerminalInfo]],
    calendar: BusinessCalendar,
    last_settled: date | None,
) -> Prepared:
    """Every row the chunk's decisions write (`facts`: its clock reading, cards and terminals;
    `last_settled`: the last settled day). Pure: the engine builds them before it posts, so the
    ledger's locks are held only for the posting and the writes (prepare again if the ledger
    refused a record: its decision changed)."""
    now, cards, terminals = facts
    result = ChunkResult(seen=len(pendings))
    days = _Days(calendar.business_day, calendar.business_day(now), last_settled)
    writes = _Writes()
    cleared_state = writes.states[(TapState.CLEARED, None)]
    for p in pendings:
        outcome = p.decision.outcome
        if outcome is Outcome.QUARANTINE:
            _quarantined(p, now, result, writes)
            continue
        cleared_state.append(p.tap.id)
        if p.previous_reason is not None:
            result.resolved += 1
            note = f"cleared on a later run: {outcome.value}"
            resolved = QuarantineAction.RESOLVED
            writes.actions.append(action(p.tap.id, resolved, p.previous_reason, note, now))
        if outcome is Outcome.DUPLICATE or outcome is Outcome.GREY_VOID:
            _disposed(p, run_id, now, result, writes)
            continue
        invariant(outcome.posts, f"unexpected outcome {outcome}")
        result.posted += 1
        result.amount_fen_posted += p.tap.amount_fen
        writes.cleared.append(_cleared_row(p, run_id, now, cards, terminals, days))
        if p.tap.kind is TapKind.LOAD and p.transfers and p.tap.load_id:
            writes.delivered_loads.append(p.tap.load_id)
    if not cleared_state:
        del writes.states[(TapState.CLEARED, None)]
    return Prepared(result, writes, now)


async def write(
    uow: UnitOfWork, conn: AsyncConnection, run_id: int, prepared: Prepared
) -> ChunkResult:
    """Write what `prepare` built, in the chunk's transaction."""
    await _write(uow, conn, run_id, prepared.writes, prepared.result, prepared.now)
    return prepared.result


def _quarantined(p: Pending, now: datetime, result: ChunkResult, writes: _Writes) -> None:
    reason = str(p.decision.reason)
    if p.previous_reason == reason:
        return  # re-examined and still waiting: nothing changed
    result.quarantined += 1
    result.reasons[reason] += 1
    writes.states[(TapState.QUARANTINED, reason)].append(p.tap.id)
    quarantined = QuarantineAction.QUARANTINED
    writes.actions.append(action(p.tap.id, quarantined, reason, quarantine_note(p), now))


def _disposed(p: Pending, run_id: int, now: datetime, result: ChunkResult, writes: _Writes) -> None:
    outcome = p.decision.outcome
    if outcome is Outcome.DUPLICATE:
        result.duplicates += 1
    else:
        result.voided += 1
    writes.dispositions.append(
        {
            "tap_record_id": p.tap.id,
            "disposition": outcome.value,
            "duplicate_of": p.decision.duplicate_of,
            "run_id": run_id,
            "decided_at": now,
        }
    )


def _cleared_row(
    p: Pending,
    run_id: int,
    now: datetime,
    cards: dict[str, CardInfo],
    terminals: dict[str, TerminalInfo],
    days: _Days,
) -> ClearedRow:
    tap, decision = p.tap, p.decision
    main = p.transfers[0].id if p.transfers and tap.amount_fen > 0 else None
    claim = p.transfers[-1].id if len(p.transfers) > 1 else None
    if tap.kind is TapKind.LOAD and p.transfers:
        main = p.transfers[0].id
    if main is None and claim is None and p.transfers:
        claim = p.transfers[0].id  # a free concession ride: only the subsidy claim
    terminal = terminals.get(tap.terminal_id)
    card = cards.get(tap.card_no)
    occurred_at = tap.occurred_at
    business_day = days.business_day(occurred_at)
    # Positional, in the table's column order (ClearedRow._fields): a NamedTuple called with 29
    # keywords costs several times a tuple made from them (measured: ~5 % of clearing's CPU).
    return ClearedRow._make(
        (
            tap.card_no,  # card_no
            tap.purse._value_,  # purse
            tap.card_counter,  # card_counter
            tap.id,  # tap_record_id
            tap.terminal_id,  # terminal_id
            tap.terminal_seq,  # terminal_seq
            decision.participant_code or "",  # participant_code
            tap.kind._value_,  # kind
            tap.txn_type,  # txn_type
            card.card_type if card else tap.card_type,  # card_type
            tap.route_id or (terminal.line if terminal else None),  # route_id
            tap.amount_fen,  # amount_fen
            tap.balance_before_fen,  # balance_before_fen
            tap.balance_after_fen,  # balance_after_fen
            tap.full_fare_fen,  # full_fare_fen
            decision.subsidy_fen,  # subsidy_fen
            decision.subsidy_scheme,  # subsidy_scheme
            decision.insured_fen,  # insured_fen
            decision.insurer_scheme,  # insurer_scheme
            tap.visit_id,  # visit_id
            tap.load_id,  # load_id
            occurred_at,  # occurred_at
            business_day,  # business_day
            settlement_day_of(business_day, days.clearing_day, days.last_settled),
            decision.outcome._value_,  # outcome
            f"{main:032x}" if main else None,  # transfer_id
            f"{claim:032x}" if claim else None,  # claim_transfer_id
            run_id,  # run_id
            now,  # cleared_at
        )
    )


async def _write(
    uow: UnitOfWork,
    conn: AsyncConnection,
    run_id: int,
    writes: _Writes,
    result: ChunkResult,
    now: datetime,
) -> None:
    await repo.insert_cleared(conn, writes.cleared)
    await repo.insert_dispositions(conn, writes.dispositions)
    await repo.insert_actions(conn, writes.actions)
    await repo.set_states(conn, writes.states, now)
    if writes.delivered_loads:
        await uow.loads.mark_delivered(writes.delivered_loads)
    await repo.add_to_run(
        conn,
        run_id,
        records_seen=result.seen,
        posted=result.posted,
        duplicates=result.duplicates,
        voided=result.voided,
        quarantined=result.quarantined,
        amount_fen_posted=result.amount_fen_posted,
    )


def quarantine_note(p: Pending) -> str:
    """Why, in finance staff's words: the error, the field that could not be read, or the other
    record a reused counter or serial belongs to (both records shown)."""
    if p.ledger_result:
        return f"the ledger refused the transfer: {p.ledger_result}"
    if p.error:
        return f"clearing this record failed: {p.error}"
    if p.tap.unreadable:
        return f"a stored field is not of its type: {p.tap.unreadable}"
    other = p.decision.conflicts_with
    if other is None:
        return "found by the clearing engine"
    what = (
        "card counter"
        if p.decision.reason is not QuarantineReason.TERMINAL_SEQ_REUSED
        else ("terminal serial")
    )
    return (
        f"{what} already cleared with tap record {other.tap_record_id}: "
        f"{_describe_posted(other)}; this record: {_describe_posted(PostedTap.of(p.tap))}"
    )


def _describe_posted(t: PostedTap) -> str:
    return (
        f"card {t.card_no} counter {t.card_counter} ({t.purse}), terminal {t.terminal_id}"
        f" serial {t.terminal_seq}, type {t.txn_type}, {t.amount_fen} fen"
        f" ({t.balance_before_fen} -> {t.balance_after_fen}), at {t.occurred_at.isoformat()}"
    )


def action(
    tap_id: int, what: QuarantineAction, reason: str | None, note: str, at: datetime
) -> dict[str, Any]:
    """An audit row of the quarantine written by the engine itself."""
    return {
        "tap_record_id": tap_id,
        "action": what.value,
        "reason": reason,
        "override": None,
        "actor": ENGINE_ACTOR,
        "note": note,
        "at": at,
    }


async def quarantine_failed(
    conn: AsyncConnection,
    run_id: int,
    tap_id: int,
    counted: bool,
    error: BaseException,
    at: datetime,
) -> ChunkResult:
    """Quarantine the one record whose clearing raised, with the error (nothing of it was
    posted: its chunk rolled back). `counted`: the run already counted it as seen."""
    reason = QuarantineReason.RECORD_FAILED.value
    note = f"clearing this record failed: {describe(error)}"
    seen = 0 if counted else 1
    await repo.insert_actions(
        conn, [action(tap_id, QuarantineAction.QUARANTINED, reason, note, at)]
    )
    await repo.set_states(conn, {(TapState.QUARANTINED, reason): [tap_id]}, at)
    await repo.add_to_run(conn, run_id, records_seen=seen, quarantined=1)
    result = ChunkResult(seen=seen, quarantined=1)
    result.reasons[reason] += 1
    return result
