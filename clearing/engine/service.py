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
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cardio.crypto import LoadTacInput, TacVerifier
from clearing import books
from clearing.calendar import BusinessCalendar
from clearing.engine import collector, locks
from clearing.engine import repository as repo
from clearing.engine.decide import CardInfo, Decision, Outcome, Tap
from clearing.engine.facts import Facts, Pending, decide_one, gather
from clearing.engine.models import RunState
from clearing.engine.posting import open_accounts, prepare_transfers, submit
from clearing.engine.reasons import RETRIED_AUTOMATICALLY, QuarantineReason
from clearing.engine.recording import prepare, quarantine_failed, write
from clearing.engine.runs import (
    ChunkResult,
    DatabaseFailed,
    EngineError,
    Run,
    RunListener,
    RunSummary,
    describe,
)
from clearing.engine.shards import ALL_SHARDS, ShardRange, ShardRangeInvalid, checked
from clearing.engine.uow import SqlUnitOfWork
from clearing.records import TapKind, TapState
from ledger.errors import InvariantError
from ledger.port import LedgerPort
from ledger.types import BATCH_MAX
from ledger.writer import Ledger

__all__ = [
    "CHUNK_RECORDS_MAX",
    "ChunkResult",
    "ClearingEngine",
    "DatabaseFailed",
    "EngineConfig",
    "EngineError",
    "RunListener",
    "RunSummary",
    "load_verifier",
    "open_engine",
]

# Records per chunk (one database transaction). A record makes at most two transfers (fare +
# subsidy, or patient share + insured share); a chunk's transfers go to the ledger in batches of
# at most BATCH_MAX (8,190), a record's linked pair never split. Measured on the bench (2 cores,
# PostgreSQL 15): 8,000 records per chunk cleared ~15 % faster than 4,000, and 24,000 another
# ~10 % faster than 8,000 at a million taps with 2 workers (PostgreSQL's CPU per record 62-65 ->
# 54-56 us; docs/scaling.md, round 6). A worker holds two chunks (one read ahead).
CHUNK_RECORDS_DEFAULT = 24000
CHUNK_RECORDS_MAX = 4 * BATCH_MAX
SUBSIDY_SCHEMES_DEFAULT = {"student": "student", "senior": "senior", "disabled": "disabled"}


@dataclass(frozen=True, slots=True)
class EngineConfig:
    chunk_records: int = CHUNK_RECORDS_DEFAULT
    subsidy_schemes: dict[str, str] = field(default_factory=lambda: dict(SUBSIDY_SCHEMES_DEFAULT))
    calendar: BusinessCalendar = field(default_factory=BusinessCalendar)

    def __post_init__(self) -> None:
        if not 1 <= self.chunk_records <= CHUNK_RECORDS_MAX:
            raise EngineError(f"chunk_records must be 1 .. {CHUNK_RECORDS_MAX}")


def _utc_now() -> datetime:
    return datetime.now(UTC)


# A chunk the database failed as one side of a deadlock is cleared again this many times at most.
TRANSIENT_RETRIES = 3

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
    return not isinstance(error, (EngineError, InvariantError)) and repo.record_tied(error)


async def _prefetched(ahead: asyncio.Task[_Prefetched]) -> _Prefetched | None:
    """The read-ahead's result, or None if it failed on a record (the chunk is read again)."""
    try:
        return await ahead
    except Exception as error:
        if not _tied(error):
            raise
        return None


class ClearingEngine:
    """Clears staged tap records through the ledger. One instance per process (or task)."""

    def __init__(
        self,
        ledger: LedgerPort,
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
        shards: ShardRange = ALL_SHARDS,
    ) -> RunSummary:
        """Clear every staged record (or at most `records_max`), then look again at quarantined
        records that later records may cure. Returns the run's own counters (another run
        clearing at the same time counts its records in its own summary).

        No record stops a run: what fails on one record quarantines it (RECORD_FAILED, with the
        error) and the run goes on. A failure of the database itself raises DatabaseFailed;
        every chunk committed before it stays, and the next run resumes from there.

        `shards`: only the records of the cards of this range of shards (clearing/engine/
        shards.py; PostgreSQL), so several workers clear a backlog side by side."""
        try:
            shards = checked(shards)
        except ShardRangeInvalid as error:
            raise EngineError(str(error)) from None
        async with self.ledger.transaction() as conn:
            if shards != ALL_SHARDS and not repo.is_postgresql(conn):
                raise EngineError("clearing by card shards needs PostgreSQL")
            await books.open_books(self.ledger, conn=conn)
            run_id = await repo.start_run(conn, trigger, self.clock())
        run = Run(RunSummary(run_id), progress or RunListener(), shards)
        state = RunState.FAILED
        try:
            with collector.between_chunks() as after_chunk:
                await self._clear_received(run, records_max, after_chunk)
            await self._retry_quarantined(run)
            state = RunState.FINISHED
        except Exception as error:
            if not repo.database_failure(error):
                raise  # a bug: loud, with its traceback
            raise DatabaseFailed(
                f"clearing run {run_id} stopped: the database failed ({describe(error)});"
                " every chunk cleared before it is kept: run the clearing again to resume"
            ) from error
        finally:
            try:
                async with self.ledger.transaction() as conn:
                    await repo.finish_run(conn, run_id, state, self.clock())
            except Exception as error:
                # The database is gone: the run stays "running" until it is seen stale.
                if state is RunState.FINISHED or not repo.database_failure(error):
                    raise
        return run.summary

    async def _clear_received(
        self, run: Run, records_max: int | None, after_chunk: Callable[[], None]
    ) -> None:
        """The staged records, chunk by chunk, until none is left (or `records_max`);
        `after_chunk` after each (clearing/engine/collector.py)."""
        ahead: asyncio.Task[_Prefetched] | None = None
        remaining = records_max
        retries = 0
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
                        chunk = await self._next_chunk(conn, limit, prefetched, run.shards)
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
                                    run.shards,
                                )
                            )
                        used = prefetched if prefetched and chunk is prefetched.taps else None
                        result = await self._clear_chunk(conn, run.run_id, chunk, {}, used)
                except Exception as error:
                    if repo.transient(error) and retries < TRANSIENT_RETRIES:
                        # Two workers' chunks waited for each other (a terminal serial reused
                        # across shards can make one wait for the other's uncommitted row while
                        # holding the ledger's locks): the database failed one; clear it again.
                        retries += 1
                        self._accounts_known.clear()
                        continue
                    if not chunk or not _tied(error):
                        raise
                    result = await self._clear_isolating(run, chunk, {}, TapState.RECEIVED)
                retries = 0
                run.summary.add(result)
                if remaining is not None:
                    remaining -= len(chunk)
                run.listener.cleared(len(chunk))
                after_chunk()
        finally:
            if ahead is not None:
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ahead

    async def _lock(self, conn: AsyncConnection, run: Run) -> None:
        """Take the clearing lock; if another run (or a settlement) holds it, say so, wait, and
        tell how much of the backlog is still left once this run has the lock again."""
        if await locks.try_shard_locks(conn, run.shards):
            return
        others = await repo.other_running_runs(conn, run.run_id)
        run.summary.waited_for.update(others)
        run.summary.waits += 1
        run.listener.waiting(tuple(others))
        await locks.take_shard_locks(conn, run.shards)
        run.listener.backlog(await repo.count_received(conn))

    async def _clear_isolating(
        self, run: Run, chunk: Sequence[Tap], previous: dict[int, str], state: TapState
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
        self, run: Run, tap: Tap, previous: dict[int, str], state: TapState, error: BaseException
    ) -> ChunkResult:
        """Quarantine the one record whose clearing raised, with the error, in its own
        transaction (nothing of it was posted: its chunk rolled back)."""
        async with self.ledger.transaction() as conn:
            await self._lock(conn, run)
            if not await repo.ids_in_state(conn, [tap.id], state):
                return ChunkResult()
            return await quarantine_failed(
                conn, run.run_id, tap.id, tap.id in previous, error, self.clock()
            )

    async def _prefetch(
        self, after_id: int, limit: int, shards: ShardRange = ALL_SHARDS
    ) -> _Prefetched:
        """The records the next chunk will most likely take (those after `after_id`, the last of
        the chunk being cleared), with their cards and TAC results. Reads only; the next chunk
        uses them only if, under the clearing lock, they are still exactly the next records."""
        async with self.ledger.transaction() as conn:
            taps = await repo.next_received(conn, limit, after_id, shards)
            cards = await SqlUnitOfWork(conn, self.ledger).registry.cards(t.card_no for t in taps)
        tac_ok: dict[int, bool] = {}
        for start in range(0, len(taps), _TAC_SLICE):
            tac_ok.update(self._verify_tacs(taps[start : start + _TAC_SLICE]))
            await asyncio.sleep(0)  # let the chunk being written go on between slices
        return _Prefetched(taps, cards, tac_ok)

    @staticmethod
    async def _next_chunk(
        conn: AsyncConnection,
        limit: int,
        prefetched: _Prefetched | None,
        shards: ShardRange = ALL_SHARDS,
    ) -> list[Tap]:
        """The next `limit` received records, in arrival order (the prefetched ones if they
        still are exactly those: records received in state `received` never change)."""
        if prefetched is not None and prefetched.taps:
            ids = await repo.next_received_ids(conn, limit, shards)
            if ids == [t.id for t in prefetched.taps]:
                return prefetched.taps
            prefetched.taps.clear()  # stale: someone else cleared or staged records meanwhile
        return await repo.next_received(conn, limit, 0, shards)

    async def _retry_quarantined(self, run: Run) -> None:
        after_id = 0
        reasons = sorted(str(r) for r in RETRIED_AUTOMATICALLY)
        while True:
            rows: list[tuple[Tap, str]] = []
            try:
                async with self.ledger.transaction() as conn:
                    await self._lock(conn, run)
                    rows = await repo.next_retryable(
                        conn, reasons, after_id, self.config.chunk_records, run.shards
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

    # -- one chunk ---------------------------------------------------------------------------

    async def _clear_chunk(
        self,
        conn: AsyncConnection,
        run_id: int,
        chunk: Sequence[Tap],
        previous_reasons: dict[int, str],
        prefetched: _Prefetched | None = None,
    ) -> ChunkResult:
        uow = SqlUnitOfWork(conn, self.ledger)
        known = (prefetched.cards, prefetched.tac_ok) if prefetched is not None else None
        facts = await gather(uow, chunk, self.clock(), self._verify_tacs, known)
        self._accounts_known.update(facts.accounts_seen)
        pendings = self.decide_chunk(chunk, facts, previous_reasons)
        posting = prepare_transfers(pendings, facts.releases)
        last_settled = await uow.settlement.last_settled_day()
        chunk_facts = (facts.now, facts.cards, facts.terminals)
        calendar = self.config.calendar
        await open_accounts(uow, posting, self._accounts_known)
        # The chunk's own rows are written before its ledger write: from the first ledger write
        # to the commit the chunk holds the ledger's account and clock locks, which every
        # worker's chunk needs (docs/scaling.md, "the single ordering point"), so only the
        # ledger write and the commit are inside it. A record the ledger refuses (rare: the
        # shadow balance refuses first) goes to quarantine instead, which changes the rows: the
        # rows and the ledger write go back to a savepoint and are written again without it.
        while True:
            prepared = prepare(run_id, pendings, chunk_facts, calendar, last_settled)
            savepoint = await conn.begin_nested()
            try:
                result = await write(uow, conn, run_id, prepared)
            except Exception as error:
                if not _tied(error):
                    raise
                # A row the database refuses: post first after all, so that a record the
                # ledger refuses is quarantined for that (the reasons' declared order) and only
                # then are the rows written (a failure now isolates the record, as ever).
                await savepoint.rollback()
                await submit(uow, posting)
                prepared = prepare(run_id, pendings, chunk_facts, calendar, last_settled)
                return await write(uow, conn, run_id, prepared)
            await submit(uow, posting)
            if all(p.ledger_result is None for p in posting):
                await savepoint.commit()
                return result
            await savepoint.rollback()
            posting = [p for p in posting if p.decision.outcome.posts]

    def decide_chunk(
        self, chunk: Sequence[Tap], facts: Facts, previous_reasons: dict[int, str]
    ) -> list[Pending]:
        """Every record's decision: loads first (they fund the card), then each card's taps in
        counter order; records with the same card counter in arrival order, so the first one
        uploaded wins. What raises on one record quarantines it (RECORD_FAILED)."""
        order = sorted(
            chunk,
            key=lambda t: (t.kind is not TapKind.LOAD, t.card_no, t.purse, t.card_counter, t.id),
        )
        pendings: list[Pending] = []
        schemes = self.config.subsidy_schemes
        for tap in order:
            previous = previous_reasons.get(tap.id)
            try:
                pending = decide_one(tap, facts, previous, schemes)
            except Exception as error:
                if not _tied(error):
                    raise  # a bug or the database, not this record
                failed = Decision(Outcome.QUARANTINE, QuarantineReason.RECORD_FAILED)
                pending = Pending(tap, failed, previous, error=describe(error))
            pendings.append(pending)
        return pendings

    def _verify_tacs(self, chunk: Sequence[Tap]) -> dict[int, bool]:
        out: dict[int, bool] = {}
        check_purchase = self.verifier.check_purchase
        fromhex = bytes.fromhex
        for tap in chunk:
            if tap.tac is None:
                continue
            try:
                if tap.kind is TapKind.LOAD:
                    out[tap.id] = self._verify_load_tac(tap)
                    continue
                out[tap.id] = check_purchase(
                    fromhex(tap.card_no),
                    tap.amount_fen,
                    tap.txn_type,
                    fromhex(tap.terminal_id),
                    tap.terminal_seq,
                    tap.occurred_at,
                    fromhex(tap.tac),
                )
            except (ValueError, OverflowError, TypeError):
                out[tap.id] = False  # a field the TAC cannot even be computed over: no proof
        return out

    def _verify_load_tac(self, tap: Tap) -> bool:
        return self.verifier.verify_load(
            LoadTacInput(
                bytes.fromhex(tap.card_no),
                tap.balance_after_fen,
                tap.card_counter,
                tap.amount_fen,
                tap.txn_type,
                bytes.fromhex(tap.terminal_id),
                tap.occurred_at,
                bytes.fromhex(tap.tac or ""),
            )
        )


# Cards whose TAC key the verifier keeps (cardio measures ~1.3 KB each: ~260 MB at most). A
# miss costs a key diversification and a cipher context, ~3x a cached check (bench/tap.py:
# 11.7 against 4.0 us): the bench's 100,000 cards overflowed cardio's default of 50,000 and TAC
# checks of 1,000,000 taps took ~21 s, not ~12 s (when a miss cost twice what it does now).
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
