"""The SQL of the ledger's write path: lock, load, write back. No rules here (see ledger.rules).

`SqlBackend` is SQLAlchemy Core and serves SQLite (and any dialect); `PostgresBackend` replaces
the hot statements with asyncpg array and COPY statements on the same connection and transaction.
Both run the same sequence, so both backends obey the same rules. Never commits: the caller owns
the transaction.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger import pgsql, rules
from ledger.errors import invariant
from ledger.pgconn import asyncpg_of
from ledger.tables import (
    FAILURE_COLUMNS,
    TRANSFER_COLUMNS,
    TRANSFER_SELECT,
    accounts,
    clock,
    from_uuid,
    ledgers,
    pending_deadlines,
    to_uuid,
    to_uuid_or_none,
    transfer_failures,
    transfer_from_row,
    transfer_values,
    transfers,
)
from ledger.types import (
    Account,
    AccountFlags,
    CreateAccountResult,
    CreateLedgerResult,
    CreateTransferResult,
    LedgerSpec,
    Transfer,
)

# Pending transfers whose timeout passed are released by the next batches, at most this many
# per batch (the rest by the following ones, or by expire_pending_transfers).
EXPIRE_PER_BATCH_MAX = 1024
# From this many rows on, PostgreSQL inserts transfers with COPY instead of INSERT ... unnest.
COPY_ROWS_MIN = 512
# A batch written with COPY sends its rows in steps of about this many transfers, each as soon
# as the rules have decided it.
COPY_STEP_ROWS = 1024


_ID_END = 2**128


def _valid_ids(values: Iterable[object]) -> set[int]:
    # `type(v) is int` first: the common case, and much cheaper than isinstance on every id.
    return {
        v  # type: ignore[misc]
        for v in values
        if (type(v) is int or (isinstance(v, int) and not isinstance(v, bool))) and 0 < v < _ID_END  # type: ignore[operator]
    }


def _distinct_ids(values: list[object]) -> set[int]:
    """`_valid_ids` for values that repeat a lot (account ids, the mostly-zero references):
    deduplicated first, then checked; the same set as `_valid_ids(values)`."""
    distinct = set(values)
    for v in distinct:
        if type(v) is not int:  # a bool equals an int in a set: decide them the slow way
            return _valid_ids(values)
    return {v for v in distinct if 0 < v < _ID_END}  # type: ignore[operator]


class SqlBackend:
    """The write path in SQLAlchemy Core; works on every dialect (used for SQLite)."""

    dialect = "sqlite"

    def __init__(
        self, clock_ns: Callable[[], int] = time.time_ns, *, lock_accounts: bool = True
    ) -> None:
        # The wall clock, in nanoseconds; tests inject one that jumps to reach timeouts.
        self.clock_ns = clock_ns
        # False only under SERIALIZABLE isolation (the alternative the benchmark compares):
        # then conflicts surface as serialization failures and the transaction is retried.
        self.lock_for_update = lock_accounts

    # -- primitives (PostgresBackend overrides the hot ones) -----------------------------------

    async def reserve_timestamps(self, conn: AsyncConnection, count: int) -> int:
        """Reserve `count` strictly increasing nanosecond timestamps; returns the first.

        The clock row is the last lock a batch takes (after its accounts), so the order of
        locks is the same for every batch.
        """
        invariant(count > 0, "reserve at least one timestamp")
        now_ns = self.clock_ns()
        statement = (
            update(clock)
            .where(clock.c.id == 1)
            .values(
                last_ns=case((clock.c.last_ns < now_ns, now_ns), else_=clock.c.last_ns + 1)
                + (count - 1)
            )
            .returning(clock.c.last_ns)
        )
        last = (await conn.execute(statement)).scalar_one()
        return last - count + 1

    async def due_deadlines(self, conn: AsyncConnection, now_ns: int, limit: int) -> list[int]:
        # The ledger's time is the later of the wall clock and its last timestamp.
        last = select(clock.c.last_ns).where(clock.c.id == 1).scalar_subquery()
        ledger_now = case((last > now_ns, last), else_=now_ns)
        rows = await conn.execute(
            select(pending_deadlines.c.pending_id)
            .where(pending_deadlines.c.expires_at <= ledger_now)
            .order_by(pending_deadlines.c.expires_at)
            .limit(limit)
        )
        return [from_uuid(r[0]) for r in rows]

    async def fetch_transfers(self, conn: AsyncConnection, ids: set[int]) -> dict[int, Transfer]:
        if not ids:
            return {}
        columns = [transfers.c[name] for name in TRANSFER_SELECT]
        rows = await conn.execute(
            select(*columns).where(transfers.c.id.in_([to_uuid(i) for i in ids]))
        )
        return {t.id: t for t in map(transfer_from_row, rows)}

    async def fetch_failures(
        self, conn: AsyncConnection, ids: set[int]
    ) -> dict[int, tuple[Transfer, CreateTransferResult]]:
        if not ids:
            return {}
        columns = [transfer_failures.c[name] for name in TRANSFER_SELECT]
        rows = await conn.execute(
            select(*columns, transfer_failures.c.result).where(
                transfer_failures.c.id.in_([to_uuid(i) for i in ids])
            )
        )
        out = {}
        for row in rows:
            t = transfer_from_row(row)
            out[t.id] = (t, CreateTransferResult(row[-1]))
        return out

    async def fetch_resolutions(
        self, conn: AsyncConnection, pending_ids: set[int]
    ) -> dict[int, int]:
        if not pending_ids:
            return {}
        rows = await conn.execute(
            select(transfers.c.pending_id, transfers.c.flags).where(
                transfers.c.pending_id.in_([to_uuid(i) for i in pending_ids])
            )
        )
        return {from_uuid(r[0]): r[1] for r in rows}

    async def fetch_reversed_totals(self, conn: AsyncConnection, ids: set[int]) -> dict[int, int]:
        if not ids:
            return {}
        rows = await conn.execute(
            select(transfers.c.reverses_id, func.sum(transfers.c.amount))
            .where(transfers.c.reverses_id.in_([to_uuid(i) for i in ids]))
            .group_by(transfers.c.reverses_id)
        )
        return {from_uuid(r[0]): int(r[1]) for r in rows}

    async def lock_accounts(
        self, conn: AsyncConnection, ids: set[int]
    ) -> dict[int, rules.Balances]:
        if not ids:
            return {}
        query = (
            select(
                accounts.c.id,
                accounts.c.ledger,
                accounts.c.flags,
                accounts.c.debits_pending,
                accounts.c.debits_posted,
                accounts.c.credits_pending,
                accounts.c.credits_posted,
            )
            .where(accounts.c.id.in_([to_uuid(i) for i in sorted(ids)]))
            .order_by(accounts.c.id)
        )
        if self.lock_for_update:
            query = query.with_for_update()
        rows = await conn.execute(query)
        return {from_uuid(r[0]): rules.Balances(*r[1:]) for r in rows}

    async def insert_transfers(self, conn: AsyncConnection, rows: list[rules.PostedRow]) -> None:
        await conn.execute(
            insert(transfers),
            [
                dict(zip(TRANSFER_COLUMNS, record, strict=True))
                for record in pgsql.records(rows, to_uuid)
            ],
        )

    async def insert_failures(
        self, conn: AsyncConnection, failures: list[tuple[Transfer, CreateTransferResult]]
    ) -> None:
        await conn.execute(
            insert(transfer_failures),
            [
                dict(zip(FAILURE_COLUMNS, transfer_values(t) + (str(code),), strict=True))
                for t, code in failures
            ],
        )

    async def update_balances(
        self, conn: AsyncConnection, balances: dict[int, rules.Balances]
    ) -> None:
        await conn.execute(
            update(accounts)
            .where(accounts.c.id == bindparam("b_id"))
            .values(
                debits_pending=bindparam("b_dp"),
                debits_posted=bindparam("b_dpo"),
                credits_pending=bindparam("b_cp"),
                credits_posted=bindparam("b_cpo"),
            ),
            [
                {
                    "b_id": to_uuid(i),
                    "b_dp": b.debits_pending,
                    "b_dpo": b.debits_posted,
                    "b_cp": b.credits_pending,
                    "b_cpo": b.credits_posted,
                }
                for i, b in sorted(balances.items())
            ],
        )

    async def add_deadlines(self, conn: AsyncConnection, added: list[tuple[int, int]]) -> None:
        await conn.execute(
            insert(pending_deadlines),
            [{"pending_id": to_uuid(p), "expires_at": at} for p, at in added],
        )

    async def remove_deadlines(self, conn: AsyncConnection, pending_ids: list[int]) -> None:
        await conn.execute(
            pending_deadlines.delete().where(
                pending_deadlines.c.pending_id.in_([to_uuid(p) for p in pending_ids])
            )
        )

    # -- the batch ------------------------------------------------------------------------------

    async def create_transfers(
        self, conn: AsyncConnection, requests: Sequence[Sequence[Transfer]]
    ) -> list[list[CreateTransferResult]]:
        """Lock, load, apply the rules, write back: one batch in the caller's transaction."""
        flat = [t for request in requests for t in request]
        own_ids = _valid_ids(t.id for t in flat)
        pending_refs = _valid_ids(t.pending_id for t in flat)
        reverse_refs = _valid_ids(t.reverses_id for t in flat)
        due = await self.due_deadlines(conn, self.clock_ns(), EXPIRE_PER_BATCH_MAX)
        refs = pending_refs | reverse_refs | set(due)

        # Accounts to lock: the batch's own, and those of the pending transfers it resolves
        # (a post may leave its accounts at 0). Referenced transfers never change, so reading
        # them before taking the locks is safe.
        referenced = await self.fetch_transfers(conn, refs)
        account_ids = _valid_ids(a for t in flat for a in (t.debit_account_id, t.credit_account_id))
        for t in referenced.values():
            account_ids.update((t.debit_account_id, t.credit_account_id))
        locked = await self.lock_accounts(conn, account_ids)

        # Under the locks: what exists now is authoritative.
        known = await self.fetch_transfers(conn, own_ids | refs)
        late = {
            a
            for t in known.values()
            if t.id in refs
            for a in (t.debit_account_id, t.credit_account_id)
            if a not in account_ids
        }
        if late:  # a referenced transfer committed between the two reads: lock its accounts too
            locked.update(await self.lock_accounts(conn, late))
        failures = await self.fetch_failures(conn, own_ids)
        resolutions = await self.fetch_resolutions(conn, pending_refs | set(due))
        reversed_totals = await self.fetch_reversed_totals(conn, reverse_refs)
        first = await self.reserve_timestamps(conn, len(flat) + len(due) + len(pending_refs))

        batch = rules.TransferBatch(
            accounts=locked,
            transfers=known,
            failures=failures,
            resolutions=resolutions,
            reversed_totals=reversed_totals,
            timestamp_first=first,
            timestamp_count=len(flat) + len(due) + len(pending_refs),
        )
        rules.expire_pending(batch, sorted(set(due) | pending_refs))
        results = rules.create_transfers(batch, requests)
        await self.write_back(conn, batch)
        return results

    async def write_back(self, conn: AsyncConnection, batch: rules.TransferBatch) -> None:
        if batch.rows:
            await self.insert_transfers(conn, batch.rows)
        if batch.new_failures:
            await self.insert_failures(conn, batch.new_failures)
        if batch.deadlines_removed:
            await self.remove_deadlines(conn, batch.deadlines_removed)
        if batch.deadlines_added:
            await self.add_deadlines(conn, batch.deadlines_added)
        if batch.touched:
            await self.update_balances(conn, {a: batch.accounts[a] for a in batch.touched})

    async def expire_pending_transfers(self, conn: AsyncConnection, limit: int) -> int:
        """Release up to `limit` pending transfers whose timeout passed; returns how many."""
        due = await self.due_deadlines(conn, self.clock_ns(), limit)
        if not due:
            return 0
        pendings = await self.fetch_transfers(conn, set(due))
        account_ids = {
            a for t in pendings.values() for a in (t.debit_account_id, t.credit_account_id)
        }
        locked = await self.lock_accounts(conn, account_ids)
        known = await self.fetch_transfers(conn, set(due))
        resolutions = await self.fetch_resolutions(conn, set(due))
        first = await self.reserve_timestamps(conn, len(due))
        batch = rules.TransferBatch(
            accounts=locked,
            transfers=known,
            failures={},
            resolutions=resolutions,
            reversed_totals={},
            timestamp_first=first,
            timestamp_count=len(due),
        )
        expired = rules.expire_pending(batch, due)
        # A deadline whose pending transfer was resolved meanwhile is stale: drop it too.
        stale = [p for p in due if p in resolutions]
        batch.deadlines_removed.extend(stale)
        await self.write_back(conn, batch)
        return len(expired)

    # -- ledgers and accounts (not a hot path: Core on every dialect) ---------------------------

    async def create_ledgers(
        self, conn: AsyncConnection, specs: Sequence[LedgerSpec]
    ) -> list[CreateLedgerResult]:
        results = []
        for spec in specs:
            result = _check_ledger(spec)
            if result is CreateLedgerResult.OK:
                row = (
                    await conn.execute(
                        select(ledgers.c.name, ledgers.c.currency, ledgers.c.scale).where(
                            ledgers.c.id == spec.id
                        )
                    )
                ).first()
                if row is None:
                    stamp = await self.reserve_timestamps(conn, 1)
                    await conn.execute(
                        insert(ledgers).values(
                            id=spec.id,
                            name=spec.name,
                            currency=spec.code,
                            scale=spec.scale,
                            timestamp=stamp,
                        )
                    )
                elif row.currency != spec.code:
                    result = CreateLedgerResult.EXISTS_WITH_DIFFERENT_CODE
                elif row.scale != spec.scale:
                    result = CreateLedgerResult.EXISTS_WITH_DIFFERENT_SCALE
                elif row.name != spec.name:
                    result = CreateLedgerResult.EXISTS_WITH_DIFFERENT_NAME
                else:
                    result = CreateLedgerResult.EXISTS
            results.append(result)
        return results

    async def create_accounts(
        self, conn: AsyncConnection, batch: Sequence[Account]
    ) -> list[CreateAccountResult]:
        ids = _valid_ids(a.id for a in batch)
        names = {a.name for a in batch if isinstance(a.name, str)}
        existing: dict[int, Account] = {}
        id_by_name: dict[str, int] = {}
        if ids or names:
            rows = await conn.execute(
                select(
                    accounts.c.id,
                    accounts.c.ledger,
                    accounts.c.code,
                    accounts.c.name,
                    accounts.c.flags,
                    accounts.c.user_data_128,
                    accounts.c.user_data_64,
                    accounts.c.user_data_32,
                ).where(accounts.c.id.in_([to_uuid(i) for i in ids]) | accounts.c.name.in_(names))
            )
            for r in rows:
                account = Account(
                    id=from_uuid(r[0]),
                    ledger=r[1],
                    code=r[2],
                    name=r[3],
                    flags=AccountFlags(r[4]),
                    user_data_128=from_uuid(r[5]),
                    user_data_64=r[6],
                    user_data_32=r[7],
                )
                existing[account.id] = account
                id_by_name[account.name] = account.id
        known_ledgers = {r[0] for r in await conn.execute(select(ledgers.c.id))}
        results, created = rules.create_accounts(batch, existing, id_by_name, known_ledgers)
        if created:
            first = await self.reserve_timestamps(conn, len(created))
            await conn.execute(
                insert(accounts),
                [
                    {
                        "id": to_uuid(a.id),
                        "ledger": a.ledger,
                        "code": a.code,
                        "name": a.name,
                        "flags": int(a.flags),
                        "user_data_128": to_uuid_or_none(a.user_data_128),
                        "user_data_64": a.user_data_64,
                        "user_data_32": a.user_data_32,
                        "debits_pending": 0,
                        "debits_posted": 0,
                        "credits_pending": 0,
                        "credits_posted": 0,
                        "timestamp": first + k,
                    }
                    for k, a in enumerate(created)
                ],
            )
        return results


def _check_ledger(spec: LedgerSpec) -> CreateLedgerResult:
    if not isinstance(spec.id, int) or isinstance(spec.id, bool):
        return CreateLedgerResult.ID_OUT_OF_RANGE
    if spec.id == 0:
        return CreateLedgerResult.ID_MUST_NOT_BE_ZERO
    if not 0 < spec.id < 2**32:
        return CreateLedgerResult.ID_OUT_OF_RANGE
    if not isinstance(spec.code, str) or not spec.code.isalpha() or not 3 <= len(spec.code) <= 8:
        return CreateLedgerResult.CODE_INVALID
    if not isinstance(spec.scale, int) or not 0 <= spec.scale <= 18:
        return CreateLedgerResult.SCALE_INVALID
    if not isinstance(spec.name, str) or not spec.name.strip() or len(spec.name) > 100:
        return CreateLedgerResult.NAME_MUST_NOT_BE_EMPTY
    return CreateLedgerResult.OK


def _loaded(
    loaded: Sequence[Any], stamps: int, pending_refs: set[int], stored: dict[int, Transfer]
) -> rules.TransferBatch:
    """The batch from what ledger_load_batch loaded (and `stored`: more transfers that exist),
    the due pending transfers expired."""
    batch, due = pgsql.loaded_batch(loaded, stamps)
    batch.transfers.update(stored)
    rules.expire_pending(batch, sorted(set(due) | pending_refs))
    return batch


def _apply(
    loaded: Sequence[Any],
    requests: Sequence[Sequence[Transfer]],
    stamps: int,
    pending_refs: set[int],
    stored: dict[int, Transfer],
) -> tuple[list[list[CreateTransferResult]], rules.TransferBatch]:
    """The rules over what ledger_load_batch loaded (and `stored`: more transfers that exist)."""
    batch = _loaded(loaded, stamps, pending_refs, stored)
    return rules.create_transfers(batch, requests), batch


def _streamed_records(
    batch: rules.TransferBatch, steps: Iterator[None], made: dict[int, str]
) -> Iterator[tuple[Any, ...]]:
    """The batch's rows for COPY, made as the rules decide them step by step (`steps`): the
    database inserts the first rows while the rules decide the next ones."""
    written = 0
    for _ in itertools.chain(steps, (None,)):
        rows = batch.rows
        if len(rows) > written:
            yield from pgsql.records(rows[written:], pgsql.pg_uuid, made)
            written = len(rows)


def _is_unique_violation(error: BaseException) -> bool:
    """A unique violation (SQLSTATE 23505), raised by asyncpg or through SQLAlchemy."""
    return any(
        "23505" in (getattr(candidate, "sqlstate", None), getattr(candidate, "pgcode", None))
        for candidate in (error, getattr(error, "orig", None))
    )


class PostgresBackend(SqlBackend):
    """PostgreSQL: the hot statements as asyncpg array statements and COPY, same transaction."""

    dialect = "postgresql"

    _driver = staticmethod(asyncpg_of)

    async def reserve_timestamps(self, conn: AsyncConnection, count: int) -> int:
        invariant(count > 0, "reserve at least one timestamp")
        driver = await self._driver(conn)
        last = await driver.fetchval(pgsql.RESERVE, self.clock_ns(), count)
        return last - count + 1

    async def due_deadlines(self, conn: AsyncConnection, now_ns: int, limit: int) -> list[int]:
        driver = await self._driver(conn)
        return [from_uuid(r[0]) for r in await driver.fetch(pgsql.DUE_DEADLINES, now_ns, limit)]

    async def fetch_failures(
        self, conn: AsyncConnection, ids: set[int]
    ) -> dict[int, tuple[Transfer, CreateTransferResult]]:
        if not ids:
            return {}
        driver = await self._driver(conn)
        out = {}
        for row in await driver.fetch(pgsql.SELECT_FAILURES, [pgsql.pg_uuid(i) for i in ids]):
            t = transfer_from_row(row)
            out[t.id] = (t, CreateTransferResult(row[-1]))
        return out

    async def fetch_resolutions(
        self, conn: AsyncConnection, pending_ids: set[int]
    ) -> dict[int, int]:
        if not pending_ids:
            return {}
        driver = await self._driver(conn)
        rows = await driver.fetch(pgsql.SELECT_RESOLUTIONS, [pgsql.pg_uuid(i) for i in pending_ids])
        return {from_uuid(r[0]): r[1] for r in rows}

    async def lock_accounts(
        self, conn: AsyncConnection, ids: set[int]
    ) -> dict[int, rules.Balances]:
        if not ids:
            return {}
        driver = await self._driver(conn)
        sql = pgsql.LOCK_ACCOUNTS.format(lock="FOR UPDATE" if self.lock_for_update else "OFFSET 0")
        rows = await driver.fetch(sql, [pgsql.pg_uuid(i) for i in sorted(ids)])
        return {from_uuid(r[0]): rules.Balances(*r[1:]) for r in rows}

    async def create_transfers(
        self, conn: AsyncConnection, requests: Sequence[Sequence[Transfer]]
    ) -> list[list[CreateTransferResult]]:
        """The same sequence as SqlBackend's, the reads in one server-side call, in `conn`'s
        transaction (see `create_transfers_on`)."""
        return await self.create_transfers_on(await self._driver(conn), requests)

    async def commit_transfers(
        self, driver: Any, requests: Sequence[Sequence[Transfer]]
    ) -> list[list[CreateTransferResult]]:
        """One batch in a transaction of its own on the asyncpg connection `driver`, which is in
        no transaction: BEGIN, the batch, COMMIT. Rolled back on any error (an error that leaves
        the connection unusable is the caller's to see: it is still in a transaction or closed).
        (Sending the last write with the COMMIT in one message was measured slower: see
        docs/scaling.md, round 7.)"""
        await driver.execute("BEGIN")
        try:
            results = await self.create_transfers_on(driver, requests)
            await driver.execute("COMMIT")
            return results
        except BaseException:
            if not driver.is_closed() and driver.is_in_transaction():
                await driver.execute("ROLLBACK")
            raise

    async def create_transfers_on(
        self, driver: Any, requests: Sequence[Sequence[Transfer]]
    ) -> list[list[CreateTransferResult]]:
        """The batch on the asyncpg connection `driver`, inside its transaction.

        From COPY_ROWS_MIN transfers on, the batch's own ids are not looked up first: the primary
        key finds a repeated id when the rows are written; then the write is rolled back to a
        savepoint, those ids are loaded and the rules run again (a retried batch pays twice)."""
        flat = [t for request in requests for t in request]
        own_ids = _valid_ids([t.id for t in flat])
        pending_refs = _distinct_ids([t.pending_id for t in flat])
        reverse_refs = _distinct_ids([t.reverses_id for t in flat])
        account_ids = _distinct_ids(
            [t.debit_account_id for t in flat] + [t.credit_account_id for t in flat]
        )
        # Each id is made into its parameter once: the load and the rows written reuse it.
        made = dict(zip(account_ids, map(pgsql.pg_uuids, account_ids), strict=True))
        own_made = list(map(pgsql.pg_uuids, own_ids))
        made.update(zip(own_ids, own_made, strict=True))
        probe = len(flat) < COPY_ROWS_MIN
        loaded = await driver.fetch(
            pgsql.LOAD_BATCH,
            pgsql.ids_text([made[i] for i in account_ids]),
            pgsql.ids_text(own_made),
            pgsql.ids_text(map(pgsql.pg_uuids, pending_refs)),
            pgsql.ids_text(map(pgsql.pg_uuids, reverse_refs)),
            self.clock_ns(),
            EXPIRE_PER_BATCH_MAX,
            len(flat),
            self.lock_for_update,
            probe,
        )
        stamps = len(flat) + len(pending_refs)
        if probe:
            results, batch = _apply(loaded, requests, stamps, pending_refs, {})
            await self._write(driver, batch, made)
            return results
        await driver.execute("SAVEPOINT ledger_batch")
        try:
            # The rules run while COPY sends their rows (see _streamed_records).
            batch = _loaded(loaded, stamps, pending_refs, {})
            results: list[list[CreateTransferResult]] = []
            steps = rules.create_transfers_in_steps(batch, requests, results, COPY_STEP_ROWS)
            await driver.copy_records_to_table(
                "ledger_transfers",
                records=_streamed_records(batch, steps, made),
                columns=list(TRANSFER_COLUMNS),
            )
            await self._write(driver, batch, made, rows_written=True)
        except Exception as error:
            if not _is_unique_violation(error):
                raise
            await driver.execute("ROLLBACK TO SAVEPOINT ledger_batch")
            stored = await self._fetch_transfers_on(driver, own_ids)
            results, batch = _apply(loaded, requests, stamps, pending_refs, stored)
            await self._write(driver, batch, made)
        return results

    async def _write(
        self,
        driver: Any,
        batch: rules.TransferBatch,
        made: dict[int, str],
        *,
        rows_written: bool = False,
    ) -> None:
        """`write_back` on the asyncpg connection `driver`, with the ids already made (`made`);
        `rows_written`: the transfer rows are in already."""
        rows = [] if rows_written else batch.rows
        records = pgsql.records(rows, pgsql.pg_uuid, made) if rows else []
        ordered = sorted(batch.touched)
        balances = [batch.accounts[a] for a in ordered]
        balance_columns = (
            pgsql.ids_text([made.get(a) or pgsql.pg_uuid(a) for a in ordered]),
            pgsql.ints_text([b.debits_pending for b in balances]),
            pgsql.ints_text([b.debits_posted for b in balances]),
            pgsql.ints_text([b.credits_pending for b in balances]),
            pgsql.ints_text([b.credits_posted for b in balances]),
        )
        if batch.new_failures:
            await driver.executemany(
                pgsql.INSERT_FAILURE,
                [transfer_values(t) + (str(code),) for t, code in batch.new_failures],
            )
        if batch.deadlines_removed:
            await driver.execute(
                pgsql.DELETE_DEADLINES, pgsql.ids_text(map(pgsql.pg_uuids, batch.deadlines_removed))
            )
        if batch.deadlines_added:
            await driver.executemany(
                pgsql.INSERT_DEADLINE, [(pgsql.pg_uuid(p), at) for p, at in batch.deadlines_added]
            )
        if rows and len(rows) < COPY_ROWS_MIN:
            # The common small batch: transfer rows and balances in one statement.
            parameters = [*map(pgsql.array_text, zip(*records, strict=True)), *balance_columns]
            await driver.fetch(pgsql.WRITE_SMALL_BATCH, *parameters)
        elif rows:
            await driver.copy_records_to_table(
                "ledger_transfers", records=records, columns=list(TRANSFER_COLUMNS)
            )
        if ordered and (not rows or len(rows) >= COPY_ROWS_MIN):  # else written with the rows
            await driver.execute(pgsql.UPDATE_BALANCES, *balance_columns)

    async def write_back(self, conn: AsyncConnection, batch: rules.TransferBatch) -> None:
        await self._write(await self._driver(conn), batch, {})

    async def fetch_transfers(self, conn: AsyncConnection, ids: set[int]) -> dict[int, Transfer]:
        return await self._fetch_transfers_on(await self._driver(conn), ids)

    async def _fetch_transfers_on(self, driver: Any, ids: set[int]) -> dict[int, Transfer]:
        if not ids:
            return {}
        rows = await driver.fetch(pgsql.SELECT_TRANSFERS, [pgsql.pg_uuid(i) for i in ids])
        return {t.id: t for t in map(transfer_from_row, rows)}


def backend_for(
    dialect_name: str, clock_ns: Callable[[], int] = time.time_ns, *, lock_accounts: bool = True
) -> SqlBackend:
    backend = PostgresBackend if dialect_name == "postgresql" else SqlBackend
    return backend(clock_ns, lock_accounts=lock_accounts)
