"""The ledger facade: the only way money moves. Batches, group commit, retries, then reads.

Concurrent `create_transfers` calls on one `Ledger` are coalesced into one database transaction
(group commit, as TigerBeetle batches requests), each caller still getting its own results.
Measured reason: one committed transaction per transfer tops out near the fsync rate (~2,000/s
on the reference machine). Never commits a caller-owned connection.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ledger.backends import SqlBackend, backend_for
from ledger.errors import (
    BatchMalformedError,
    BatchTooLargeError,
    InvalidArgumentError,
    LedgerClosedError,
    LedgerConflictError,
    LedgerError,
)
from ledger.reader import HistoryPage, LedgerReader, TransferPage
from ledger.types import (
    BATCH_MAX,
    PAGE_DEFAULT,
    Account,
    AccountBalance,
    AccountState,
    CreateAccountResult,
    CreateLedgerResult,
    CreateTransferResult,
    LedgerSpec,
    Transfer,
)

T = TypeVar("T")

# A transaction that lost a race (same new id inserted concurrently, deadlock, serialization
# failure, SQLite busy) is retried this many times before the error reaches the caller.
RETRY_MAX = 16
# Callers waiting for the group-commit flusher, at most; beyond it create_transfers refuses.
QUEUE_REQUESTS_MAX = 65_536
EXPIRE_LIMIT_MAX = 8190
# Group transactions in flight at once on PostgreSQL: while one holds the clock row and commits,
# the next sends its load and waits on the locks it needs, so the round trips overlap. Locks are
# taken in one order (accounts by id, the clock last): no deadlock. SQLite has one writer: 1.
FLUSHES_MAX = 2
_WRITE_OPTION = "ledger_write"


class LedgerBusyError(LedgerError):
    code = "ledger_busy"
    status = 503


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a database error, whether raised through SQLAlchemy or by asyncpg
    directly (the PostgreSQL hot path talks to asyncpg on the same connection)."""
    for candidate in (error, getattr(error, "orig", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def _retry_reason(error: BaseException) -> str | None:
    """Why a failed transaction may be retried as a whole, or None if it may not."""
    state = _sqlstate(error)
    if state == "23505":
        # A unique violation on a transfer id or pending id: another transaction committed
        # the same id first; the retry sees it (exists). CHECK violations are never retried.
        return "unique_violation"
    if state == "40P01":
        return "deadlock"
    if state == "40001":
        return "serialization_failure"
    if isinstance(error, OperationalError) and "locked" in str(error.orig).lower():
        return "sqlite_busy"
    if isinstance(error, IntegrityError) and "unique" in str(error.orig).lower():
        return "unique_violation"
    return None


def _check_batch(items: Sequence[Any], kind: type) -> None:
    if not isinstance(items, list | tuple):
        raise BatchMalformedError(f"expected a list of {kind.__name__}, got {type(items).__name__}")
    if len(items) > BATCH_MAX:
        raise BatchTooLargeError(
            f"a batch holds at most {BATCH_MAX} items, got {len(items)}: split it"
        )
    for k, item in enumerate(items):
        if not isinstance(item, kind):
            raise BatchMalformedError(
                f"item {k} is a {type(item).__name__}, expected {kind.__name__}"
            )


@dataclass(slots=True)
class _Request:
    transfers: Sequence[Transfer]
    future: asyncio.Future[list[CreateTransferResult]]


def _sqlite_immediate(engine: AsyncEngine) -> None:
    """SQLite: take the write lock at BEGIN (BEGIN IMMEDIATE), so two writers never deadlock on a
    lock upgrade; wait for a busy database instead of failing at once; WAL for readers."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        # Only the ledger's writing transactions take the write lock up front; readers keep a
        # deferred BEGIN so they read (WAL) while a writer works.
        immediate = connection.get_execution_options().get(_WRITE_OPTION)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Ledger:
    """The async ledger. `async with await Ledger.open(url) as ledger: ...`.

    Every method takes an optional caller-owned `conn`: the work then happens inside the
    caller's transaction (no retry, no group commit, never committed here).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        owns_engine: bool = False,
        group_commit: bool = True,
        clock_ns: Callable[[], int] = time.time_ns,
        isolation: str = "lock_ordering",
    ) -> None:
        if isolation not in ("lock_ordering", "serializable"):
            raise InvalidArgumentError(
                f"isolation must be lock_ordering or serializable: {isolation}"
            )
        self.engine = engine
        self.isolation = isolation
        self.backend: SqlBackend = backend_for(
            engine.dialect.name, clock_ns, lock_accounts=isolation == "lock_ordering"
        )
        self.reader = LedgerReader(engine)
        self._owns_engine = owns_engine
        # Group transactions driven on asyncpg itself: PostgreSQL with lock ordering (the
        # serializable comparison keeps SQLAlchemy's transactions and their isolation level).
        self._on_driver = engine.dialect.name == "postgresql" and isolation == "lock_ordering"
        self._group_commit = group_commit
        self._queue: deque[_Request] = deque()
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self.group_flushes = 0  # how many group transactions committed (observability)
        self.retries: Counter[str] = Counter()  # retried transactions, by reason

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        group_commit: bool = True,
        pool_size: int = 5,
        clock_ns: Callable[[], int] = time.time_ns,
        isolation: str = "lock_ordering",
    ) -> Ledger:
        """Open a ledger on a migrated database (`onecard db upgrade` makes the schema).

        `isolation`: "lock_ordering" (default: READ COMMITTED, accounts locked FOR UPDATE in id
        order) or "serializable" (SERIALIZABLE, no row locks, retried on serialization failure;
        kept so the benchmark can compare the two on PostgreSQL).
        """
        if url.startswith("sqlite"):
            engine = create_async_engine(url)
            _sqlite_immediate(engine)
        elif isolation == "serializable":
            engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, isolation_level="SERIALIZABLE"
            )
        else:
            engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
        return cls(
            engine,
            owns_engine=True,
            group_commit=group_commit,
            clock_ns=clock_ns,
            isolation=isolation,
        )

    async def close(self) -> None:
        self._closed = True
        if self._flusher is not None:
            self._wakeup.set()
            await self._flusher
            self._flusher = None
        if self._owns_engine:
            await self.engine.dispose()

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # -- transactions --------------------------------------------------------------------------

    async def _in_transaction(
        self, work: Callable[[AsyncConnection], Awaitable[T]], conn: AsyncConnection | None
    ) -> T:
        if conn is not None:
            try:
                return await work(conn)
            except Exception as error:
                if _retry_reason(error) is not None:
                    raise LedgerConflictError(
                        "a concurrent transaction wrote the same ids first or deadlocked: "
                        "roll back and retry your transaction"
                    ) from error
                raise
        return await self._retrying(lambda: self._in_own_transaction(work))

    async def _in_own_transaction(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with self._write_transaction() as own:
            return await work(own)

    async def _retrying(self, attempt_once: Callable[[], Awaitable[T]]) -> T:
        """`attempt_once` (a whole transaction), again while it fails for a retryable reason."""
        attempt = 0
        while True:
            try:
                return await attempt_once()
            except Exception as error:
                reason = _retry_reason(error)
                attempt += 1
                if reason is None or attempt > RETRY_MAX:
                    raise
                self.retries[reason] += 1
                # Jittered backoff, so racing transactions do not meet again at once.
                await asyncio.sleep(random.random() * 0.001 * attempt)

    async def _committed_on_driver(
        self, requests: Sequence[Sequence[Transfer]]
    ) -> list[list[CreateTransferResult]]:
        """A group's transaction driven on the asyncpg connection itself (PostgreSQL, lock
        ordering; see PostgresBackend.commit_transfers): SQLAlchemy's begin and commit cost
        ~0.2 ms of Python a group of 16 (-10 % a transfer, docs/scaling.md round 7)."""
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            try:
                return await self.backend.commit_transfers(driver, requests)  # type: ignore[attr-defined, no-any-return]
            finally:
                # Never back to the pool inside a transaction or broken.
                if driver is None or driver.is_closed() or driver.is_in_transaction():
                    await conn.invalidate()

    # -- writes --------------------------------------------------------------------------------

    async def create_ledgers(
        self, specs: Sequence[LedgerSpec], *, conn: AsyncConnection | None = None
    ) -> list[CreateLedgerResult]:
        _check_batch(specs, LedgerSpec)
        return await self._in_transaction(lambda c: self.backend.create_ledgers(c, specs), conn)

    async def create_accounts(
        self, batch: Sequence[Account], *, conn: AsyncConnection | None = None
    ) -> list[CreateAccountResult]:
        """Create accounts; one result per account (see CreateAccountResult's precedence)."""
        _check_batch(batch, Account)
        if not batch:
            return []
        return await self._in_transaction(lambda c: self.backend.create_accounts(c, batch), conn)

    async def create_transfers(
        self, batch: Sequence[Transfer], *, conn: AsyncConnection | None = None
    ) -> list[CreateTransferResult]:
        """Post transfers; one result per transfer (see CreateTransferResult's precedence).

        Raises BatchTooLargeError (more than BATCH_MAX) or BatchMalformedError (not a list of
        Transfer) before touching the database, so nothing is half-applied.
        """
        _check_batch(batch, Transfer)
        if not batch:
            return []
        if conn is not None or not self._group_commit:
            results = await self._in_transaction(
                lambda c: self.backend.create_transfers(c, [batch]), conn
            )
            return results[0]
        return await self._submit(batch)

    async def expire_pending_transfers(
        self, *, limit: int = EXPIRE_LIMIT_MAX, conn: AsyncConnection | None = None
    ) -> int:
        """Release pending transfers whose timeout passed (a beat task may call this); the
        batches also release them as they go. Returns how many were released."""
        limit = max(1, min(limit, EXPIRE_LIMIT_MAX))
        return await self._in_transaction(
            lambda c: self.backend.expire_pending_transfers(c, limit), conn
        )

    # -- group commit --------------------------------------------------------------------------

    async def _submit(self, batch: Sequence[Transfer]) -> list[CreateTransferResult]:
        if self._closed:
            raise LedgerClosedError("the ledger is closed")
        if len(self._queue) >= QUEUE_REQUESTS_MAX:
            raise LedgerBusyError(f"{QUEUE_REQUESTS_MAX} requests are waiting: retry later")
        future: asyncio.Future[list[CreateTransferResult]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.append(_Request(batch, future))
        self._wakeup.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        return await future

    async def _flush_loop(self) -> None:
        running: set[asyncio.Task[None]] = set()
        most = FLUSHES_MAX if self.engine.dialect.name == "postgresql" else 1

        def done(task: asyncio.Task[None]) -> None:
            running.discard(task)
            self._wakeup.set()

        while True:
            if self._queue and len(running) < most:
                group: list[_Request] = []
                size = 0
                while self._queue and size + len(self._queue[0].transfers) <= BATCH_MAX:
                    request = self._queue.popleft()
                    group.append(request)
                    size += len(request.transfers)
                task = asyncio.create_task(self._flush(group))
                running.add(task)
                task.add_done_callback(done)
                continue
            if self._closed and not self._queue and not running:
                return
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _flush(self, group: list[_Request]) -> None:
        requests = [r.transfers for r in group]
        try:
            if self._on_driver:
                results = await self._retrying(lambda: self._committed_on_driver(requests))
            else:
                results = await self._in_transaction(
                    lambda c: self.backend.create_transfers(c, requests), None
                )
        except Exception as error:  # noqa: BLE001 - handed to every waiting caller, not swallowed
            for r in group:
                if not r.future.done():
                    r.future.set_exception(error)
            return
        self.group_flushes += 1
        for r, result in zip(group, results, strict=True):
            if not r.future.done():
                r.future.set_result(result)

    # -- reads: the same as `self.reader` (ledger.reader.LedgerReader), here for convenience --

    async def lookup_accounts(
        self, ids: Sequence[int], *, conn: AsyncConnection | None = None
    ) -> list[AccountState]:
        return await self.reader.lookup_accounts(ids, conn=conn)

    async def credits_available(
        self, ids: Sequence[int], *, conn: AsyncConnection | None = None
    ) -> list[int | None]:
        return await self.reader.credits_available(ids, conn=conn)

    async def lookup_accounts_by_name(
        self, names: Sequence[str], *, conn: AsyncConnection | None = None
    ) -> list[AccountState]:
        return await self.reader.lookup_accounts_by_name(names, conn=conn)

    async def lookup_transfers(
        self, ids: Sequence[int], *, conn: AsyncConnection | None = None
    ) -> list[Transfer]:
        return await self.reader.lookup_transfers(ids, conn=conn)

    async def get_account_transfers(
        self,
        account_id: int,
        *,
        since: int | None = None,
        until: int | None = None,
        after: int | None = None,
        limit: int = PAGE_DEFAULT,
        conn: AsyncConnection | None = None,
    ) -> TransferPage:
        return await self.reader.get_account_transfers(
            account_id, since=since, until=until, after=after, limit=limit, conn=conn
        )

    async def get_account_history(
        self,
        account_id: int,
        *,
        since: int | None = None,
        until: int | None = None,
        after: int | None = None,
        limit: int = PAGE_DEFAULT,
        conn: AsyncConnection | None = None,
    ) -> HistoryPage:
        return await self.reader.get_account_history(
            account_id, since=since, until=until, after=after, limit=limit, conn=conn
        )

    async def get_balance_as_of(
        self, account_id: int, at: int, *, conn: AsyncConnection | None = None
    ) -> AccountBalance | None:
        return await self.reader.get_balance_as_of(account_id, at, conn=conn)

    @asynccontextmanager
    async def _write_transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**{_WRITE_OPTION: True})
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A writing transaction of the ledger's engine, for callers that group several calls."""
        async with self._write_transaction() as conn:
            yield conn
