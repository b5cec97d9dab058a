"""The clearing engine: staged tap records in, ledger transfers and quarantine out.

Works chunk by chunk; each chunk is one database transaction holding the ledger transfers,
the `cleared_taps` rows that make posting exactly-once, the audit rows and the records' new
states, so a worker killed at any point leaves each chunk all done or not done at all, and
the next run picks up exactly what is left. Never commits anything but its own chunks.

No record may stop clearing: a chunk that fails on a record's values is cleared again in halves
until the one record that fails alone is quarantined (RECORD_FAILED, the error in its note);
only a failure of the database itself stops a run (DatabaseFailed), and the next run resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from cardio.crypto import LoadTacInput, PurchaseTacInput, TacVerifier
from clearing import books
from clearing.books import LEDGER_CNY, TransferCode
from clearing.engine import repository as repo
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
from clearing.engine.reasons import RETRIED_AUTOMATICALLY, QuarantineReason
from clearing.engine.rows import ClearedRow
from clearing.quarantine.models import ENGINE_ACTOR, QuarantineAction
from clearing.records import TapKind, TapState
from clearing.settlement.days import BusinessCalendar
from ledger import AccountState, CreateTransferResult, Transfer, TransferFlags, transfer_id
from ledger.types import BATCH_MAX
from ledger.writer import Ledger

# Records per chunk (one database transaction). A record makes at most two transfers (fare +
# subsidy, or patient share + insured share); a chunk's transfers go to the ledger in batches of
# at most BATCH_MAX (8,190), a record's linked pair never split. Measured on the bench (2 cores,
# PostgreSQL 15, contended): 8,000 records per chunk cleared ~15 % faster than 4,000.
CHUNK_RECORDS_DEFAULT = 8000
CHUNK_RECORDS_MAX = 4 * BATCH_MAX
SUBSIDY_SCHEMES_DEFAULT = {"student": "student", "senior": "senior", "disabled": "disabled"}


class EngineError(Exception):
    code = "engine_error"


class DatabaseFailed(EngineError):
    """The database itself failed during a run (not one record): the run stopped cleanly."""

    code = "database_failed"


class RunListener:
    """What a run tells whoever watches it (the CLI's progress bar); this one ignores it all."""

    def cleared(self, records: int) -> None:
        """This run took `records` more records off the backlog."""

    def waiting(self, other_runs: tuple[int, ...]) -> None:
        """The clearing lock is held (by these other clearing runs, or a settlement when
        none): this run waits for it."""

    def backlog(self, records: int) -> None:
        """After a wait: `records` are still staged (others may have cleared some)."""


# An error as finance staff read it in a quarantine note or a CLI line (one line, bounded).
ERROR_NOTE_LENGTH_MAX = 500


def _describe(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"[:ERROR_NOTE_LENGTH_MAX]


def invariant(condition: bool, message: str) -> None:
    """A bug if it fires; raises even under `python -O`."""
    if not condition:
        raise EngineError(f"invariant broken: {message}")


@dataclass
class RunSummary:
    run_id: int
    records_seen: int = 0
    posted: int = 0
    duplicates: int = 0
    voided: int = 0
    quarantined: int = 0
    resolved: int = 0
    amount_fen_posted: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    # Other clearing runs this run waited for (it shared the backlog with them), and how often.
    waited_for: set[int] = field(default_factory=set)
    waits: int = 0

    def add(self, other: ChunkResult) -> None:
        self.records_seen += other.seen
        self.posted += other.posted
        self.duplicates += other.duplicates
        self.voided += other.voided
        self.quarantined += other.quarantined
        self.resolved += other.resolved
        self.amount_fen_posted += other.amount_fen_posted
        self.reasons.update(other.reasons)


@dataclass
class ChunkResult:
    seen: int = 0
    posted: int = 0
    duplicates: int = 0
    voided: int = 0
    quarantined: int = 0
    resolved: int = 0
    amount_fen_posted: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def merge(self, other: ChunkResult) -> None:
        self.seen += other.seen
        self.posted += other.posted
        self.duplicates += other.duplicates
        self.voided += other.voided
        self.quarantined += other.quarantined
        self.resolved += other.resolved
        self.amount_fen_posted += other.amount_fen_posted
        self.reasons.update(other.reasons)


@dataclass
class _Run:
    summary: RunSummary
    listener: RunListener

    @property
    def run_id(self) -> int:
        return self.summary.run_id


@dataclass(frozen=True, slots=True)
class EngineConfig:
    chunk_records: int = CHUNK_RECORDS_DEFAULT
    subsidy_schemes: dict[str, str] = field(default_factory=lambda: dict(SUBSIDY_SCHEMES_DEFAULT))
    calendar: BusinessCalendar = field(default_factory=BusinessCalendar)

    def __post_init__(self) -> None:
        if not 1 <= self.chunk_records <= CHUNK_RECORDS_MAX:
            raise EngineError(f"chunk_records must be 1 .. {CHUNK_RECORDS_MAX}")


@functools.lru_cache(maxsize=1 << 19)
def _account_id(name: str) -> int:
    """The ledger id of a chart account (validated once per name, then cached)."""
    return books.account_of(name).id


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Pending:
    """One record's decision while its chunk is being built."""

    tap: Tap
    decision: Decision
    previous_reason: str | None = None  # when re-examined from quarantine
    override_action: int | None = None
    transfers: list[Transfer] = field(default_factory=list)
    ledger_result: str | None = None
    error: str | None = None  # what raised while deciding it (RECORD_FAILED)


# TAC checks of a prefetched chunk run in slices of this many records, yielding in between.
_TAC_SLICE = 1000


@dataclass
class _Prefetched:
    """The next chunk read ahead: its records, their cards and TAC results."""

    taps: list[Tap]
    cards: dict[str, CardInfo]
    tac_ok: dict[int, bool]


def _tied(error: BaseException) -> bool:
    """Tied to the records at hand (see repo.record_tied); an invariant broken is a bug."""
    return not isinstance(error, EngineError) and repo.record_tied(error)


async def _prefetched(ahead: asyncio.Task[_Prefetched]) -> _Prefetched | None:
    """The read-ahead's result, or None if it failed on a record (the chunk is read again)."""
    try:
        return await ahead
    except Exception as error:
        if not _tied(error):
            raise
        return None


@dataclass(slots=True)
class _Facts:
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
    releases: dict[int, tuple[int, str | None, str | None]]
    balances: dict[str, int]


def _lookup_safe(tap: Tap) -> bool:
    """The record's keys fit the columns they are looked up in (an inconsistent record's
    counter or serial may not: it is decided without lookups, as RECORD_INCONSISTENT)."""
    return (
        tap.unreadable is None
        and 0 <= tap.card_counter <= CARD_COUNTER_MAX
        and 1 <= tap.terminal_seq <= TERMINAL_SEQ_MAX
    )


class ClearingEngine:
    """Clears staged tap records through the ledger. One instance per process (or task)."""

    def __init__(
        self,
        ledger: Ledger,
        verifier: TacVerifier,
        config: EngineConfig | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.ledger = ledger
        self.verifier = verifier
        self.config = config or EngineConfig()
        self.clock = clock
        self._accounts_known: set[int] = set()

    # -- runs ----------------------------------------------------------------------------------

    async def clear_pending(
        self,
        *,
        trigger: str = "cli",
        records_max: int | None = None,
        progress: RunListener | None = None,
    ) -> RunSummary:
        """Clear every staged record (or at most `records_max`), then look again at quarantined
        records that later records may cure. Returns the run's own counters (another run
        clearing at the same time counts its records in its own summary).

        No record stops a run: what fails on one record quarantines it (RECORD_FAILED, with the
        error) and the run goes on. A failure of the database itself raises DatabaseFailed;
        every chunk committed before it stays, and the next run resumes from there."""
        async with self.ledger.transaction() as conn:
            await books.open_books(self.ledger, conn=conn)
            run_id = await repo.start_run(conn, trigger, self.clock())
        run = _Run(RunSummary(run_id), progress or RunListener())
        state = "failed"
        try:
            await self._clear_received(run, records_max)
            await self._retry_quarantined(run)
            state = "finished"
        except Exception as error:
            if not repo.database_failure(error):
                raise  # a bug: loud, with its traceback
            raise DatabaseFailed(
                f"clearing run {run_id} stopped: the database failed ({_describe(error)});"
                " every chunk cleared before it is kept: run the clearing again to resume"
            ) from error
        finally:
            try:
                async with self.ledger.transaction() as conn:
                    await repo.finish_run(conn, run_id, state, self.clock())
            except Exception as error:
                # The database is gone: the run stays "running" until it is seen stale.
                if state == "finished" or not repo.database_failure(error):
                    raise
        return run.summary

    async def _clear_received(self, run: _Run, records_max: int | None) -> None:
        """The staged records, chunk by chunk, until none is left (or `records_max`)."""
        ahead: asyncio.Task[_Prefetched] | None = None
        remaining = records_max
        try:
            while remaining is None or remaining > 0:
                limit = self.config.chunk_records
                if remaining is not None:
                    limit = min(limit, remaining)
                chunk: list[Tap] = []
                try:
                    async with self.ledger.transaction() as conn:
                        await self._lock(conn, run)
                        prefetched = None
                        if ahead is not None:
                            prefetched, ahead = await _prefetched(ahead), None
                        chunk = await self._next_chunk(conn, limit, prefetched)
                        if not chunk:
                            break
                        left = None if remaining is None else remaining - len(chunk)
                        if repo.is_postgresql(conn) and len(chunk) == limit and left != 0:
                            # Read the next chunk and check its TACs while this one is written:
                            # the database works on one core while Python works on the other.
                            ahead = asyncio.create_task(
                                self._prefetch(
                                    chunk[-1].id,
                                    self.config.chunk_records if left is None else min(limit, left),
                                )
                            )
                        used = prefetched if prefetched and chunk is prefetched.taps else None
                        result = await self._clear_chunk(conn, run.run_id, chunk, {}, used)
                except Exception as error:
                    if not chunk or not _tied(error):
                        raise
                    result = await self._clear_isolating(run, chunk, {}, TapState.RECEIVED)
                run.summary.add(result)
                if remaining is not None:
                    remaining -= len(chunk)
                run.listener.cleared(len(chunk))
        finally:
            if ahead is not None:
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ahead

    async def _lock(self, conn: AsyncConnection, run: _Run) -> None:
        """Take the clearing lock; if another run (or a settlement) holds it, say so, wait, and
        tell how much of the backlog is still left once this run has the lock again."""
        if await repo.try_clearing_lock(conn):
            return
        others = await repo.other_running_runs(conn, run.run_id)
        run.summary.waited_for.update(others)
        run.summary.waits += 1
        run.listener.waiting(tuple(others))
        await repo.take_clearing_lock(conn)
        run.listener.backlog(await repo.count_received(conn))

    async def _clear_isolating(
        self, run: _Run, chunk: Sequence[Tap], previous: dict[int, str], state: TapState
    ) -> ChunkResult:
        """Clear a chunk that failed as a whole: its halves each in their own transaction, down
        to the one record that fails alone, which goes to quarantine with the error while the
        rest clears. Costs a few extra transactions per poisoned record, none on a clean chunk."""
        self._accounts_known.clear()  # accounts the rolled-back chunk opened are gone
        total = ChunkResult()
        parts = [list(chunk)]
        while parts:
            part = parts.pop()
            try:
                async with self.ledger.transaction() as conn:
                    await self._lock(conn, run)
                    still = await repo.ids_in_state(conn, [t.id for t in part], state)
                    part = [t for t in part if t.id in still]
                    if not part:
                        continue  # another run took them meanwhile
                    result = await self._clear_chunk(conn, run.run_id, part, previous)
            except Exception as error:
                if not _tied(error):
                    raise
                self._accounts_known.clear()
                if len(part) > 1:
                    middle = len(part) // 2
                    parts += [part[middle:], part[:middle]]  # the earlier half first
                    continue
                result = await self._quarantine_failed(run, part[0], previous, state, error)
            total.merge(result)
        return total

    async def _quarantine_failed(
        self,
        run: _Run,
        tap: Tap,
        previous: dict[int, str],
        state: TapState,
        error: BaseException,
    ) -> ChunkResult:
        """Quarantine the one record whose clearing raised, with the error, in its own
        transaction (nothing of it was posted: its chunk rolled back)."""
        now = self.clock()
        reason = QuarantineReason.RECORD_FAILED.value
        note = f"clearing this record failed: {_describe(error)}"
        seen = 0 if tap.id in previous else 1
        async with self.ledger.transaction() as conn:
            await self._lock(conn, run)
            if not await repo.ids_in_state(conn, [tap.id], state):
                return ChunkResult()
            await repo.insert_actions(
                conn,
                [_action(tap.id, QuarantineAction.QUARANTINED, reason, ENGINE_ACTOR, note, now)],
            )
            await repo.set_states(conn, {(TapState.QUARANTINED, reason): [tap.id]}, now)
            await repo.add_to_run(conn, run.run_id, records_seen=seen, quarantined=1)
        result = ChunkResult(seen=seen, quarantined=1)
        result.reasons[reason] += 1
        return result

    async def _prefetch(self, after_id: int, limit: int) -> _Prefetched:
        """The records the next chunk will most likely take (those after `after_id`, the last of
        the chunk being cleared), with their cards and TAC results. Reads only; the next chunk
        uses them only if, under the clearing lock, they are still exactly the next records."""
        async with self.ledger.transaction() as conn:
            taps = await repo.next_received(conn, limit, after_id)
            cards = await repo.card_infos(conn, (t.card_no for t in taps))
        tac_ok: dict[int, bool] = {}
        for start in range(0, len(taps), _TAC_SLICE):
            tac_ok.update(self._verify_tacs(taps[start : start + _TAC_SLICE]))
            await asyncio.sleep(0)  # let the chunk being written go on between slices
        return _Prefetched(taps, cards, tac_ok)

    @staticmethod
    async def _next_chunk(
        conn: AsyncConnection, limit: int, prefetched: _Prefetched | None
    ) -> list[Tap]:
        """The next `limit` received records, in arrival order (the prefetched ones if they
        still are exactly those: records received in state `received` never change)."""
        if prefetched is not None and prefetched.taps:
            ids = await repo.next_received_ids(conn, limit)
            if ids == [t.id for t in prefetched.taps]:
                return prefetched.taps
            prefetched.taps.clear()  # stale: someone else cleared or staged records meanwhile
        return await repo.next_received(conn, limit)

    async def _retry_quarantined(self, run: _Run) -> None:
        after_id = 0
        reasons = sorted(str(r) for r in RETRIED_AUTOMATICALLY)
        while True:
            rows: list[tuple[Tap, str]] = []
            try:
                async with self.ledger.transaction() as conn:
                    await self._lock(conn, run)
                    rows = await repo.next_retryable(
                        conn, reasons, after_id, self.config.chunk_records
                    )
                    if not rows:
                        return
                    after_id = rows[-1][0].id
                    previous = {tap.id: reason for tap, reason in rows}
                    chunk = [t for t, _ in rows]
                    result = await self._clear_chunk(conn, run.run_id, chunk, previous)
            except Exception as error:
                if not rows or not _tied(error):
                    raise
                result = await self._clear_isolating(run, chunk, previous, TapState.QUARANTINED)
            result.seen = 0  # already counted when first seen
            run.summary.add(result)

    # -- one chunk -----------------------------------------------------------------------------

    async def _clear_chunk(
        self,
        conn: AsyncConnection,
        run_id: int,
        chunk: Sequence[Tap],
        previous_reasons: dict[int, str],
        prefetched: _Prefetched | None = None,
    ) -> ChunkResult:
        facts = await self._gather(conn, chunk, prefetched)
        # Loads first (they fund the card), then each card's taps in counter order; records
        # with the same card counter in arrival order, so the first one uploaded wins.
        order = sorted(
            chunk,
            key=lambda t: (t.kind is not TapKind.LOAD, t.card_no, t.purse, t.card_counter, t.id),
        )
        pendings: list[_Pending] = []
        for tap in order:
            previous = previous_reasons.get(tap.id)
            try:
                pending = self._decide_one(tap, facts, previous)
            except Exception as error:
                if not _tied(error):
                    raise  # a bug or the database, not this record
                failed = Decision(Outcome.QUARANTINE, QuarantineReason.RECORD_FAILED)
                pending = _Pending(tap, failed, previous, error=_describe(error))
            pendings.append(pending)
        await self._post(conn, pendings, facts.terminals, facts.cards, facts.releases)
        return await self._record(conn, run_id, pendings, facts.now, facts.cards, facts.terminals)

    async def _gather(
        self, conn: AsyncConnection, chunk: Sequence[Tap], prefetched: _Prefetched | None
    ) -> _Facts:
        """What the chunk's decisions need, in a few batched reads. Records inconsistent in
        themselves are never looked up (their values may be out of any column's range)."""
        terminals = await repo.terminal_infos(conn)
        if prefetched is not None:
            cards, tac_ok = prefetched.cards, prefetched.tac_ok
        else:
            cards = await repo.card_infos(conn, (t.card_no for t in chunk))
            tac_ok = self._verify_tacs(chunk)
        sound = [t for t in chunk if _lookup_safe(t)]
        by_card: dict[tuple[str, Purse, int], PostedTap] = {
            (p.card_no, p.purse, p.card_counter): p for p in await repo.posted_near(conn, sound)
        }
        by_terminal: dict[tuple[str, int], PostedTap] = {
            (p.terminal_id, p.terminal_seq): p
            for p in await repo.posted_by_terminal_keys(conn, (t.terminal_key for t in sound))
        }
        greys = [t for t in sound if t.is_grey]
        highest = await repo.highest_counters(conn, ((t.card_no, t.purse) for t in greys))
        clinic_keys = [
            (terminals[t.terminal_id].participant_code, t.visit_id)
            for t in sound
            if t.kind is TapKind.CLINIC and t.visit_id and t.terminal_id in terminals
        ]
        splits = await repo.clinic_splits(conn, clinic_keys) if clinic_keys else {}
        load_ids = [t.load_id for t in sound if t.kind is TapKind.LOAD and t.load_id]
        loads = await repo.pending_loads(conn, load_ids) if load_ids else {}
        releases = await repo.release_overrides(conn, [t.id for t in chunk])
        balances = await self._available_balances(conn, sound, cards)
        return _Facts(
            self.clock(), terminals, cards, tac_ok, by_card, by_terminal, highest, splits,
            loads, releases, balances,
        )  # fmt: skip

    def _decide_one(self, tap: Tap, facts: _Facts, previous_reason: str | None) -> _Pending:
        """One record's decision; a posting one is remembered for the records after it."""
        terminal = facts.terminals.get(tap.terminal_id)
        release = facts.releases.get(tap.id)
        overrides: frozenset[QuarantineReason] = frozenset()
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
        ctx = Context(
            now=facts.now,
            terminal=terminal,
            card=facts.cards.get(tap.card_no),
            tac_ok=facts.tac_ok.get(tap.id, False),
            same_card_counter=by_card.get(tap.card_key),
            same_terminal_seq=facts.by_terminal.get(tap.terminal_key),
            previous=by_card.get((tap.card_no, tap.purse, tap.card_counter - 1)),
            following=by_card.get((tap.card_no, tap.purse, tap.card_counter + 1)),
            later_counter_posted=later_posted,
            split=facts.splits.get((terminal.participant_code, tap.visit_id))
            if terminal is not None and tap.visit_id
            else None,
            pending_load=facts.loads.get(tap.load_id) if tap.load_id else None,
            overrides=overrides,
            subsidy_schemes=self.config.subsidy_schemes,
        )
        decision = decide(tap, ctx)
        if decision.outcome.posts:
            decision = self._check_balance(tap, decision, facts.balances)
        pending = _Pending(tap, decision, previous_reason)
        if release is not None:
            pending.override_action = release[0]
        if decision.outcome.posts:
            posted = PostedTap.of(tap)
            by_card[tap.card_key] = posted
            facts.by_terminal[tap.terminal_key] = posted
            if tap.kind is TapKind.LOAD and tap.load_id:
                facts.loads[tap.load_id] = PendingLoadInfo(tap.card_no, tap.amount_fen, "delivered")
        return pending

    def _verify_tacs(self, chunk: Sequence[Tap]) -> dict[int, bool]:
        out: dict[int, bool] = {}
        for tap in chunk:
            if tap.tac is None:
                continue
            try:
                out[tap.id] = self._verify_tac(tap)
            except (ValueError, OverflowError, TypeError):
                out[tap.id] = False  # a field the TAC cannot even be computed over: no proof
        return out

    def _verify_tac(self, tap: Tap) -> bool:
        tac = bytes.fromhex(tap.tac or "")
        card_serial = bytes.fromhex(tap.card_no)
        terminal_id = bytes.fromhex(tap.terminal_id)
        if tap.kind is TapKind.LOAD:
            return self.verifier.verify_load(
                LoadTacInput(
                    card_serial,
                    tap.balance_after_fen,
                    tap.card_counter,
                    tap.amount_fen,
                    tap.txn_type,
                    terminal_id,
                    tap.occurred_at,
                    tac,
                )
            )
        return self.verifier.verify_purchase(
            PurchaseTacInput(
                card_serial,
                tap.amount_fen,
                tap.txn_type,
                terminal_id,
                tap.terminal_seq,
                tap.occurred_at,
                tac,
            )
        )

    async def _available_balances(
        self, conn: AsyncConnection, chunk: Sequence[Tap], cards: dict[str, CardInfo]
    ) -> dict[str, int]:
        """What each card and pending-load account of the chunk may still spend (by name)."""
        names: list[str] = []
        for card_no in sorted({t.card_no for t in chunk if t.card_no in cards}):
            names.append(books.card(card_no))
        for card_no in sorted(
            {t.card_no for t in chunk if t.kind is TapKind.LOAD and t.card_no in cards}
        ):
            names.append(books.card_pending(card_no))
        found: dict[str, int] = {}
        for start in range(0, len(names), BATCH_MAX):
            states: list[AccountState] = await self.ledger.lookup_accounts(
                [_account_id(n) for n in names[start : start + BATCH_MAX]], conn=conn
            )
            for state in states:
                found[state.name] = state.balance.credit_available
                self._accounts_known.add(state.id)
        return {name: found.get(name, 0) for name in names}

    @staticmethod
    def _check_balance(tap: Tap, decision: Decision, balances: dict[str, int]) -> Decision:
        if tap.kind is TapKind.LOAD:
            source = books.card_pending(tap.card_no)
            if balances.get(source, 0) < tap.amount_fen:
                return Decision(Outcome.QUARANTINE, QuarantineReason.CARD_BALANCE_INSUFFICIENT)
            balances[source] -= tap.amount_fen
            target = books.card(tap.card_no)
            balances[target] = balances.get(target, 0) + tap.amount_fen
            return decision
        if tap.amount_fen == 0:
            return decision
        account = books.card(tap.card_no)
        if balances.get(account, 0) < tap.amount_fen:
            return Decision(Outcome.QUARANTINE, QuarantineReason.CARD_BALANCE_INSUFFICIENT)
        balances[account] -= tap.amount_fen
        return decision

    # -- posting -------------------------------------------------------------------------------

    def _transfers_for(self, p: _Pending, suffix: str) -> list[Transfer]:
        tap, decision = p.tap, p.decision
        code_main = (
            TransferCode.CLINIC_COPAY if tap.kind is TapKind.CLINIC else TransferCode.TAP_PURCHASE
        )
        key = f"{tap.card_no}:{tap.purse}:{tap.card_counter}{suffix}"
        out: list[Transfer] = []
        if tap.kind is TapKind.LOAD:
            out.append(
                Transfer(
                    id=transfer_id(f"load:{tap.load_id}{suffix}"),
                    debit_account_id=_account_id(books.card_pending(tap.card_no)),
                    credit_account_id=_account_id(books.card(tap.card_no)),
                    amount=tap.amount_fen,
                    ledger=LEDGER_CNY,
                    code=TransferCode.LOAD_CONFIRMED,
                    user_data_64=tap.terminal_seq,
                    user_data_32=tap.card_counter,
                )
            )
            return out
        payable = _account_id(books.payable(decision.participant_code or ""))
        if tap.amount_fen > 0:
            out.append(
                Transfer(
                    id=transfer_id(f"tap:{key}"),
                    debit_account_id=_account_id(books.card(tap.card_no)),
                    credit_account_id=payable,
                    amount=tap.amount_fen,
                    ledger=LEDGER_CNY,
                    code=code_main,
                    user_data_64=tap.terminal_seq,
                    user_data_32=tap.card_counter,
                )
            )
        if decision.subsidy_fen and decision.subsidy_scheme:
            out.append(
                Transfer(
                    id=transfer_id(f"subsidy:{key}"),
                    debit_account_id=_account_id(books.subsidy(decision.subsidy_scheme)),
                    credit_account_id=payable,
                    amount=decision.subsidy_fen,
                    ledger=LEDGER_CNY,
                    code=TransferCode.SUBSIDY_CLAIM,
                    user_data_64=tap.terminal_seq,
                    user_data_32=tap.card_counter,
                )
            )
        if decision.insured_fen and decision.insurer_scheme:
            out.append(
                Transfer(
                    id=transfer_id(f"insurer:{key}"),
                    debit_account_id=_account_id(books.insurer(decision.insurer_scheme)),
                    credit_account_id=payable,
                    amount=decision.insured_fen,
                    ledger=LEDGER_CNY,
                    code=TransferCode.INSURER_CLAIM,
                    user_data_64=tap.terminal_seq,
                    user_data_32=tap.card_counter,
                )
            )
        # The card debit and its claim succeed or fail together.
        return [
            dataclasses.replace(t, flags=t.flags | TransferFlags.LINKED) if i < len(out) - 1 else t
            for i, t in enumerate(out)
        ]

    async def _post(
        self,
        conn: AsyncConnection,
        pendings: list[_Pending],
        terminals: dict[str, TerminalInfo],
        cards: dict[str, CardInfo],
        release_suffix: dict[int, tuple[int, str | None, str | None]],
    ) -> None:
        posting = [p for p in pendings if p.decision.outcome.posts]
        names: set[str] = set()
        for p in posting:
            suffix = ""
            release = release_suffix.get(p.tap.id)
            if release is not None and release[2] == QuarantineReason.LEDGER_REFUSED:
                # The ledger remembers a refused id forever: a re-clear needs a new one.
                suffix = f":r{release[0]}"
            p.transfers = self._transfers_for(p, suffix)
            names.add(books.card(p.tap.card_no))
            if p.tap.kind is TapKind.LOAD:
                names.add(books.card_pending(p.tap.card_no))
            if p.decision.participant_code:
                names.add(books.payable(p.decision.participant_code))
            if p.decision.subsidy_scheme:
                names.add(books.subsidy(p.decision.subsidy_scheme))
            if p.decision.insurer_scheme:
                names.add(books.insurer(p.decision.insurer_scheme))
        missing = [n for n in sorted(names) if _account_id(n) not in self._accounts_known]
        if missing:
            opened = await books.ensure_accounts(self.ledger, missing, conn=conn)
            self._accounts_known.update(opened.values())
        owners: list[_Pending] = []
        transfers: list[Transfer] = []
        for p in posting:
            if len(transfers) + len(p.transfers) > BATCH_MAX:
                await self._submit(conn, owners, transfers)
                owners, transfers = [], []
            for transfer in p.transfers:
                owners.append(p)
                transfers.append(transfer)
        await self._submit(conn, owners, transfers)

    async def _submit(
        self, conn: AsyncConnection, owners: list[_Pending], transfers: list[Transfer]
    ) -> None:
        """Post one ledger batch; `owners[i]` is the record `transfers[i]` belongs to. A record
        any of whose transfers the ledger refused goes to quarantine (its linked partner is
        refused with it, as `linked_event_failed`: the record keeps the first real cause)."""
        if not transfers:
            return
        results = await self.ledger.create_transfers(transfers, conn=conn)
        invariant(len(results) == len(transfers), "one ledger result per transfer")
        for p, result in zip(owners, results, strict=True):
            if result in (CreateTransferResult.OK, CreateTransferResult.EXISTS):
                continue
            if p.ledger_result is None or p.ledger_result == "linked_event_failed":
                p.ledger_result = str(result)
        for p in owners:
            if p.ledger_result is not None and p.decision.outcome.posts:
                p.decision = Decision(Outcome.QUARANTINE, QuarantineReason.LEDGER_REFUSED)

    # -- recording -----------------------------------------------------------------------------

    async def _record(
        self,
        conn: AsyncConnection,
        run_id: int,
        pendings: list[_Pending],
        now: datetime,
        cards: dict[str, CardInfo],
        terminals: dict[str, TerminalInfo],
    ) -> ChunkResult:
        result = ChunkResult(seen=len(pendings))
        last_settled = await repo.last_settled_day(conn)
        calendar = self.config.calendar
        business_day = calendar.business_day
        settlement_day = calendar.settlement_day
        cleared_rows: list[ClearedRow] = []
        disposition_rows: list[dict[str, Any]] = []
        action_rows: list[dict[str, Any]] = []
        states: dict[tuple[TapState, str | None], list[int]] = defaultdict(list)
        delivered_loads: list[str] = []
        for p in pendings:
            tap, decision = p.tap, p.decision
            outcome = decision.outcome
            if outcome is Outcome.QUARANTINE:
                reason = str(decision.reason)
                if p.previous_reason == reason:
                    continue  # re-examined and still waiting: nothing changed
                result.quarantined += 1
                result.reasons[reason] += 1
                states[(TapState.QUARANTINED, reason)].append(tap.id)
                note = _quarantine_note(p)
                action_rows.append(
                    _action(tap.id, QuarantineAction.QUARANTINED, reason, ENGINE_ACTOR, note, now)
                )
                continue
            states[(TapState.CLEARED, None)].append(tap.id)
            if p.previous_reason is not None:
                result.resolved += 1
                action_rows.append(
                    _action(
                        tap.id,
                        QuarantineAction.RESOLVED,
                        p.previous_reason,
                        ENGINE_ACTOR,
                        f"cleared on a later run: {outcome.value}",
                        now,
                    )
                )
            if outcome in (Outcome.DUPLICATE, Outcome.GREY_VOID):
                if outcome is Outcome.DUPLICATE:
                    result.duplicates += 1
                else:
                    result.voided += 1
                disposition_rows.append(
                    {
                        "tap_record_id": tap.id,
                        "disposition": outcome.value,
                        "duplicate_of": decision.duplicate_of,
                        "run_id": run_id,
                        "decided_at": now,
                    }
                )
                continue
            invariant(outcome.posts, f"unexpected outcome {outcome}")
            result.posted += 1
            result.amount_fen_posted += tap.amount_fen
            main = p.transfers[0].id if p.transfers and tap.amount_fen > 0 else None
            claim = p.transfers[-1].id if len(p.transfers) > 1 else None
            if tap.kind is TapKind.LOAD and p.transfers:
                main = p.transfers[0].id
                if tap.load_id:
                    delivered_loads.append(tap.load_id)
            if main is None and claim is None and p.transfers:
                claim = p.transfers[0].id  # a free concession ride: only the subsidy claim
            terminal = terminals.get(tap.terminal_id)
            card = cards.get(tap.card_no)
            occurred_at = tap.occurred_at
            cleared_rows.append(
                ClearedRow(
                    card_no=tap.card_no,
                    purse=tap.purse.value,
                    card_counter=tap.card_counter,
                    tap_record_id=tap.id,
                    terminal_id=tap.terminal_id,
                    terminal_seq=tap.terminal_seq,
                    participant_code=decision.participant_code or "",
                    kind=tap.kind.value,
                    txn_type=tap.txn_type,
                    card_type=card.card_type if card else tap.card_type,
                    route_id=tap.route_id or (terminal.line if terminal else None),
                    amount_fen=tap.amount_fen,
                    balance_before_fen=tap.balance_before_fen,
                    balance_after_fen=tap.balance_after_fen,
                    full_fare_fen=tap.full_fare_fen,
                    subsidy_fen=decision.subsidy_fen,
                    subsidy_scheme=decision.subsidy_scheme,
                    insured_fen=decision.insured_fen,
                    insurer_scheme=decision.insurer_scheme,
                    visit_id=tap.visit_id,
                    load_id=tap.load_id,
                    occurred_at=occurred_at,
                    business_day=business_day(occurred_at),
                    settlement_day=settlement_day(occurred_at, now, last_settled),
                    outcome=outcome.value,
                    transfer_id=uuid.UUID(int=main) if main else None,
                    claim_transfer_id=uuid.UUID(int=claim) if claim else None,
                    run_id=run_id,
                    cleared_at=now,
                )
            )
        await repo.insert_cleared(conn, cleared_rows)
        await repo.insert_dispositions(conn, disposition_rows)
        await repo.insert_actions(conn, action_rows)
        await repo.set_states(conn, states, now)
        if delivered_loads:
            await _mark_loads_delivered(conn, delivered_loads)
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
        return result


def _quarantine_note(p: _Pending) -> str:
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


def _action(
    tap_id: int, action: QuarantineAction, reason: str | None, actor: str, note: str, at: datetime
) -> dict[str, Any]:
    return {
        "tap_record_id": tap_id,
        "action": action.value,
        "reason": reason,
        "override": None,
        "actor": actor,
        "note": note,
        "at": at,
    }


async def _mark_loads_delivered(conn: AsyncConnection, load_ids: list[str]) -> None:
    """The pending loads leave the action list (the lists service owns that change)."""
    from clearing.lists import service as lists_service
    from clearing.lists.models import PendingLoadState

    session = AsyncSession(bind=conn)
    try:
        for load_id in load_ids:
            await lists_service.mark_pending_load(session, load_id, PendingLoadState.DELIVERED)
        await session.flush()
    finally:
        await session.close()


# Cards whose TAC key the verifier keeps (cardio measures ~1.3 KB each: ~260 MB at most). A
# miss costs a key diversification, several times a cached check: the bench's 100,000 cards
# overflowed cardio's default of 50,000 and TAC checks of 1,000,000 taps took ~21 s, not ~12 s.
TAC_CARDS_CACHED_MAX = 200_000


def load_verifier(key_store_path: Any, cache_cards_max: int = TAC_CARDS_CACHED_MAX) -> TacVerifier:
    """The TAC verifier of the issuer key store named in the settings."""
    from cardio.keystore import KeyKind, load_key_store

    store = load_key_store(key_store_path)
    return TacVerifier(store.master(KeyKind.TAC).key, store.algorithm, cache_cards_max)


@contextlib.asynccontextmanager
async def open_engine(
    url: str, key_store_path: Any, config: EngineConfig | None = None
) -> AsyncIterator[ClearingEngine]:
    """A ready engine on the database at `url` (its own ledger, closed on exit)."""
    verifier = load_verifier(key_store_path)
    async with await Ledger.open(url) as ledger:
        yield ClearingEngine(ledger, verifier, config)
