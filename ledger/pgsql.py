"""The PostgreSQL write path's SQL text and row encoding (ledger.backends runs them).

Ids travel to asyncpg as 32 hex digits (`pg_uuid`), which it parses in C; rows go as tuples in
`TRANSFER_COLUMNS` order (`records`), for COPY or for the arrays of INSERT ... unnest.

The write path's array parameters travel as PostgreSQL array literals in one text parameter
each (`array_text`, cast in the statement: `$1::text::uuid[]`). asyncpg encodes a list parameter
element by element, with an abstract-class check on each: ~0.45 us an element, 170 us of Python
for the 448 elements of a 16-transfer write, against ~40 us to join them. Every value is an int or
an id made here (`pg_uuids`): nothing in a literal comes from text a caller wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ledger import rules
from ledger.errors import invariant
from ledger.tables import (
    FAILURE_COLUMNS,
    TRANSFER_COLUMNS,
    TRANSFER_SELECT,
    transfer_from_row,
)
from ledger.types import CreateTransferResult, Transfer

UPDATE_BALANCES = """
UPDATE ledger_accounts AS a
SET debits_pending = v.dp, debits_posted = v.dpo, credits_pending = v.cp, credits_posted = v.cpo
FROM unnest($1::text::uuid[], $2::text::bigint[], $3::text::bigint[], $4::text::bigint[],
  $5::text::bigint[])
  AS v(id, dp, dpo, cp, cpo)
WHERE a.id = v.id
"""
_PG_TYPES = {
    "id": "uuid",
    "debit_account_id": "uuid",
    "credit_account_id": "uuid",
    "pending_id": "uuid",
    "reverses_id": "uuid",
    "user_data_128": "uuid",
    "code": "int",
    "flags": "int",
    "timeout_s": "int",
}
INSERT_TRANSFERS = (
    f"INSERT INTO ledger_transfers ({', '.join(TRANSFER_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(
        f"${k + 1}::text::{_PG_TYPES.get(name, 'bigint')}[]"
        for k, name in enumerate(TRANSFER_COLUMNS)
    )
    + ")"
)
# A small batch's write in one statement: its transfer rows and its accounts' balances.
WRITE_SMALL_BATCH = (
    f"WITH t AS ({INSERT_TRANSFERS} RETURNING 1), b AS ("
    + UPDATE_BALANCES.replace("$1::", "$24::")
    .replace("$2::", "$25::")
    .replace("$3::", "$26::")
    .replace("$4::", "$27::")
    .replace("$5::", "$28::")
    + " RETURNING 1) SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM b)"
)
INSERT_FAILURE = (
    f"INSERT INTO ledger_transfer_failures ({', '.join(FAILURE_COLUMNS)})"
    f" VALUES ({', '.join(f'${k + 1}' for k in range(len(FAILURE_COLUMNS)))})"
)
INSERT_DEADLINE = (
    "INSERT INTO ledger_pending_deadlines (pending_id, expires_at) VALUES ($1::uuid, $2::bigint)"
)
DELETE_DEADLINES = "DELETE FROM ledger_pending_deadlines WHERE pending_id = ANY($1::text::uuid[])"
# Look-ups by id: a LATERAL sub-select per id (OFFSET 0 keeps the planner from flattening it),
# so PostgreSQL probes the index once per id. With a plain join of unnest(...) the planner chose
# a hash join over a sequential scan of the whole transfer table, which grows with the ledger
# (measured on 350,000 transfers, 8,000 ids: 70-100 ms joined, 13-16 ms as LATERAL probes).
SELECT_TRANSFERS = (
    "SELECT t.* FROM unnest($1::uuid[]) AS v(id) CROSS JOIN LATERAL"
    f" (SELECT {', '.join(TRANSFER_SELECT)} FROM ledger_transfers AS x WHERE x.id = v.id"
    " OFFSET 0) AS t"
)
SELECT_FAILURES = (
    "SELECT f.* FROM unnest($1::uuid[]) AS v(id) CROSS JOIN LATERAL"
    f" (SELECT {', '.join(TRANSFER_SELECT)}, result FROM ledger_transfer_failures AS x"
    " WHERE x.id = v.id OFFSET 0) AS f"
)
SELECT_RESOLUTIONS = (
    "SELECT t.pending_id, t.flags FROM unnest($1::uuid[]) AS v(id) CROSS JOIN LATERAL"
    " (SELECT pending_id, flags FROM ledger_transfers AS x WHERE x.pending_id = v.id"
    " OFFSET 0) AS t"
)
# Locks are taken probe by probe in the order of the (sorted) id array: one fixed order for
# every batch, so concurrent batches never deadlock.
LOCK_ACCOUNTS = (
    "SELECT a.* FROM unnest($1::uuid[]) WITH ORDINALITY AS v(id, n) CROSS JOIN LATERAL"
    " (SELECT id, ledger, flags, debits_pending, debits_posted, credits_pending, credits_posted"
    " FROM ledger_accounts AS x WHERE x.id = v.id {lock}) AS a ORDER BY v.n"
)
DUE_DEADLINES = (
    "SELECT pending_id FROM ledger_pending_deadlines"
    " WHERE expires_at <= GREATEST($1::bigint, (SELECT last_ns FROM ledger_clock WHERE id = 1))"
    " ORDER BY expires_at LIMIT $2"
)
# Everything a batch needs, in one round trip (migration 0005_ledgerperf): due deadlines, the
# accounts locked in id order with their balances, what exists under the locks and the first
# reserved timestamp, as rows tagged by kind (see the migration for the row shape).
LOAD_BATCH = (
    "SELECT * FROM ledger_load_batch($1::text::uuid[], $2::text::uuid[], $3::text::uuid[],"
    " $4::text::uuid[],"
    " $5::bigint, $6::int, $7::int, $8::boolean, $9::boolean)"
)
_LOAD_DUE, _LOAD_ACCOUNT, _LOAD_TRANSFER, _LOAD_FAILURE = 1, 2, 3, 4
_LOAD_RESOLUTION, _LOAD_REVERSED, _LOAD_CLOCK = 5, 6, 7
RESERVE = (
    "UPDATE ledger_clock SET last_ns = GREATEST($1::bigint, last_ns + 1) + $2::bigint - 1"
    " WHERE id = 1 RETURNING last_ns"
)


def records(
    rows: list[rules.PostedRow],
    make_id: Callable[[int], Any],
    made: dict[int, Any] | None = None,
) -> list[tuple[Any, ...]]:
    """Rows as the database stores them, in TRANSFER_COLUMNS order: ids through `make_id`,
    0 as NULL for the optional ids and effective_at. A batch names few accounts many times:
    their ids are made once. `made`: ids already made (the batch's own, its accounts), used and
    added to."""
    cache: dict[int, Any] = {} if made is None else made

    def make(value: int) -> Any:
        done = cache.get(value)
        if done is None:
            done = cache[value] = make_id(value)
        return done

    get = cache.get
    return [
        (
            get(r[0]) or make(r[0]),
            get(r[1]) or make(r[1]),
            get(r[2]) or make(r[2]),
            r[3],
            make(r[4]) if r[4] else None,
            make(r[5]) if r[5] else None,
            r[6],
            r[7],
            r[8],
            r[9],
            make(r[10]) if r[10] else None,
            r[11],
            r[12],
            r[13] or None,
            *r[14:],
        )
        for r in rows
    ]


# An id as asyncpg takes a uuid parameter, for map(): a bound method of the format string, no
# Python frame per id (measured: 200 ns an id, against 440 ns through a function with an
# f-string).
pg_uuids = "%032x".__mod__


def array_text(values: Iterable[object]) -> str:
    """An array parameter as PostgreSQL's array literal (see the module's docstring): ints and
    ids made by `pg_uuids` only; None is NULL."""
    return "{" + ",".join(["NULL" if v is None else str(v) for v in values]) + "}"


def ids_text(ids: Iterable[str]) -> str:
    """`array_text` of ids already made by `pg_uuids` (no NULL among them)."""
    return "{" + ",".join(ids) + "}"


def ints_text(values: Iterable[int]) -> str:
    """`array_text` of ints (no NULL among them)."""
    return "{" + ",".join(map(str, values)) + "}"


def pg_uuid(value: int) -> str:
    """An id as asyncpg takes a uuid parameter: 32 hex digits (parsed in C; several times
    cheaper than making a uuid.UUID)."""
    return pg_uuids(value)  # type: ignore[no-any-return]


def loaded_batch(rows: Sequence[Any], stamps: int) -> tuple[rules.TransferBatch, list[int]]:
    """The TransferBatch from ledger_load_batch's rows; also the due pending ids, in order.
    `stamps`: timestamps the batch needs besides one per due deadline."""
    due: list[int] = []
    locked: dict[int, rules.Balances] = {}
    known: dict[int, Transfer] = {}
    failures: dict[int, tuple[Transfer, CreateTransferResult]] = {}
    resolutions: dict[int, int] = {}
    reversed_totals: dict[int, int] = {}
    first = 0
    for row in rows:
        kind = row[0]
        if kind == _LOAD_ACCOUNT:
            locked[row[1].int] = rules.Balances(*row[17:23])
        elif kind == _LOAD_TRANSFER:
            t = transfer_from_row(row[1:16])
            known[t.id] = t
        elif kind == _LOAD_FAILURE:
            t = transfer_from_row(row[1:16])
            failures[t.id] = (t, CreateTransferResult(row[16]))
        elif kind == _LOAD_RESOLUTION:
            resolutions[row[1].int] = row[9]
        elif kind == _LOAD_REVERSED:
            reversed_totals[row[1].int] = int(row[4])
        elif kind == _LOAD_DUE:
            due.append(row[1].int)
        elif kind == _LOAD_CLOCK:
            first = row[15]
    invariant(first > 0, "ledger_load_batch reserved no timestamps")
    batch = rules.TransferBatch(
        accounts=locked,
        transfers=known,
        failures=failures,
        resolutions=resolutions,
        reversed_totals=reversed_totals,
        timestamp_first=first,
        timestamp_count=stamps + len(due),
    )
    return batch, due
