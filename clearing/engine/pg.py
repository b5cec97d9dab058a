"""The clearing engine's PostgreSQL hot path: its statements sent straight to asyncpg, inside
the chunk's SQLAlchemy transaction. SQLAlchemy's statement and row handling cost more than
PostgreSQL's own work for the engine's thousands of rows per statement (see bench/clearing.py).

Every function here is the PostgreSQL branch of one in clearing/engine/repository.py, which
chooses it; the column lists come from the engine's own types (Tap, PostedTap, ClearedRow).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.engine.decide import CardInfo, PostedTap, Purse, Tap, TerminalInfo
from clearing.engine.rows import ClearedRow
from clearing.engine.shards import ALL_SHARDS, ShardRange
from clearing.records import TapState
from ledger.pgconn import asyncpg_of as driver

# Rows per array parameter of one statement.
ARRAY_ROWS_MAX = 50_000

# The fields of Tap that are stored columns of tap_records, in Tap's order (a row read in this
# order is Tap's positional arguments); and PostedTap's, all cleared_taps columns.
TAP_FIELDS = tuple(f.name for f in fields(Tap) if f.init and f.name != "unreadable")
POSTED_FIELDS = tuple(f.name for f in fields(PostedTap))

# The records waiting: their ids from tap_open (migration 0010_tapopen: the open records, kept
# by triggers, with their card's shard), then their rows by primary key. (As a join, PostgreSQL
# merges with a scan of tap_records from its first row: measured 50-70 ms against 13-16 ms for
# 8,000 records.)
_IDS_SELECT = (
    "SELECT o.tap_record_id FROM tap_open AS o WHERE o.state = $1 AND o.tap_record_id > $3"
    " ORDER BY o.tap_record_id LIMIT $2"
)
_IDS_SELECT_SHARDS = _IDS_SELECT.replace(
    " ORDER BY", " AND o.shard >= $4 AND o.shard < $5 ORDER BY"
)
_COLUMNS = ", ".join("upper(t.tac)" if name == "tac" else "t." + name for name in TAP_FIELDS)


def _rows_of(ids_select: str) -> str:
    rows = f"SELECT {_COLUMNS} FROM tap_records AS t WHERE t.id = ANY(ARRAY({ids_select}))"
    return rows + " ORDER BY t.id"


_TAP_SELECT = _rows_of(_IDS_SELECT)
_TAP_SELECT_SHARDS = _rows_of(_IDS_SELECT_SHARDS)

# One index probe per record (not three): the posted taps of its card and purse with a counter
# from one below to one above its own (the duplicate, and both neighbours of the balance chain).
_POSTED_NEAR = (
    "SELECT c.* FROM unnest($1::varchar[], $2::varchar[], $3::integer[], $4::integer[])"
    f" AS k(card_no, purse, low, high) CROSS JOIN LATERAL (SELECT {', '.join(POSTED_FIELDS)}"
    " FROM cleared_taps AS x WHERE x.card_no = k.card_no AND x.purse = k.purse"
    " AND x.card_counter BETWEEN k.low AND k.high OFFSET 0) AS c"
)

# One unique-index probe per key (LATERAL, so the planner never hash-joins the whole table).
_POSTED_BY_TERMINAL = (
    "SELECT c.* FROM unnest($1::varchar[], $2::bigint[]) AS k(terminal_id, terminal_seq)"
    f" CROSS JOIN LATERAL (SELECT {', '.join(POSTED_FIELDS)} FROM cleared_taps AS x"
    " WHERE x.terminal_id = k.terminal_id AND x.terminal_seq = k.terminal_seq OFFSET 0) AS c"
)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# A stored purse value as its member (a dict look-up; calling the enum costs a microsecond).
_PURSE_OF = {purse.value: purse for purse in Purse}


def _posted(r: Any) -> PostedTap:
    return PostedTap(r[0], r[1], _PURSE_OF[r[2]], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10])


async def next_received(
    conn: AsyncConnection, limit: int, after_id: int, shards: ShardRange = ALL_SHARDS
) -> list[Tap]:
    # Columns in the order of Tap's fields: one positional call per record. PostgreSQL's
    # column types guarantee each field's type.
    args: list[Any] = [TapState.RECEIVED.value, limit, after_id]
    query = _TAP_SELECT
    if shards != ALL_SHARDS:
        query, args = _TAP_SELECT_SHARDS, [*args, *shards]
    rows = await (await driver(conn)).fetch(query, *args)
    return [Tap(*row) for row in rows]


async def next_received_ids(
    conn: AsyncConnection, limit: int, shards: ShardRange = ALL_SHARDS
) -> list[int]:
    args: list[Any] = [TapState.RECEIVED.value, limit, 0]
    query = _IDS_SELECT
    if shards != ALL_SHARDS:
        query, args = _IDS_SELECT_SHARDS, [*args, *shards]
    return [r[0] for r in await (await driver(conn)).fetch(query, *args)]


# The clearing lock (repository.CLEARING_LOCK_KEY) is the first key of every shard's lock.
async def shards_busy(conn: AsyncConnection, lock_key: int, shards: ShardRange) -> bool:
    """Another session holds (or waits for) a lock of one of these shards."""
    busy = await (await driver(conn)).fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2"
        " AND classid = $1::bigint::oid AND objid >= $2::bigint::oid"
        " AND objid < $3::bigint::oid AND pid <> pg_backend_pid())",
        lock_key,
        *shards,
    )
    return bool(busy)


async def lock_shards(conn: AsyncConnection, lock_key: int, shards: ShardRange) -> None:
    """Wait for the clearing lock (shared) and the range's shard locks (exclusive, ascending)."""
    asyncpg = await driver(conn)
    await asyncpg.execute("SELECT pg_advisory_xact_lock_shared($1::bigint)", lock_key)
    await asyncpg.execute(
        "SELECT pg_advisory_xact_lock($1::int, k) FROM generate_series($2::int, $3::int) AS k",
        lock_key,
        shards[0],
        shards[1] - 1,
    )


async def try_clearing_shared(conn: AsyncConnection, lock_key: int) -> bool:
    """Take the clearing lock shared if no settlement (or release) holds it exclusively."""
    taken = await (await driver(conn)).fetchval(
        "SELECT pg_try_advisory_xact_lock_shared($1::bigint)", lock_key
    )
    return bool(taken)


async def card_infos(conn: AsyncConnection, wanted: list[str]) -> dict[str, CardInfo]:
    rows = await (await driver(conn)).fetch(
        "SELECT card_no, card_type, scheme FROM cards WHERE card_no = ANY($1::varchar[])", wanted
    )
    return {r[0]: CardInfo(r[1], r[2]) for r in rows}


async def terminal_infos(conn: AsyncConnection, wanted: list[str]) -> dict[str, TerminalInfo]:
    rows = await (await driver(conn)).fetch(
        "SELECT t.terminal_id, p.code, t.kind, t.line FROM terminals AS t"
        " JOIN participants AS p ON p.id = t.participant_id"
        " WHERE t.terminal_id = ANY($1::varchar[])",
        wanted,
    )
    return {r[0]: TerminalInfo(r[1], str(r[2]), r[3]) for r in rows}


async def posted_near(conn: AsyncConnection, chunk: Sequence[Tap]) -> list[PostedTap]:
    # Merge each card's overlapping ranges, so a row is read once.
    ranges: list[tuple[str, str, int, int]] = []
    for card_no, purse, counter in sorted({tap.card_key for tap in chunk}):
        if ranges and ranges[-1][0] == card_no and ranges[-1][1] == purse:
            if counter - 1 <= ranges[-1][3]:
                ranges[-1] = (card_no, purse, ranges[-1][2], counter + 1)
                continue
        ranges.append((card_no, purse, counter - 1, counter + 1))
    if not ranges:
        return []
    asyncpg = await driver(conn)
    out: list[PostedTap] = []
    for part in _chunks(ranges, ARRAY_ROWS_MAX):
        rows = await asyncpg.fetch(
            _POSTED_NEAR,
            [r[0] for r in part],
            [str(r[1]) for r in part],
            [r[2] for r in part],
            [r[3] for r in part],
        )
        out.extend(_posted(r) for r in rows)
    return out


async def posted_by_terminal_keys(
    conn: AsyncConnection, wanted: list[tuple[str, int]]
) -> list[PostedTap]:
    asyncpg = await driver(conn)
    out: list[PostedTap] = []
    for part in _chunks(wanted, ARRAY_ROWS_MAX):
        rows = await asyncpg.fetch(_POSTED_BY_TERMINAL, [k[0] for k in part], [k[1] for k in part])
        out.extend(_posted(r) for r in rows)
    return out


async def insert_cleared(conn: AsyncConnection, rows: list[ClearedRow]) -> None:
    """By COPY (measured: several times faster than a bulk INSERT for thousands of rows)."""
    await (await driver(conn)).copy_records_to_table(
        "cleared_taps", records=rows, columns=list(ClearedRow._fields)
    )


async def set_state(
    conn: AsyncConnection, state: TapState, reason: str | None, ids: list[int], at: datetime
) -> None:
    await (await driver(conn)).execute(
        "UPDATE tap_records SET state = $1, quarantine_reason = $2, state_changed_at = $3"
        " WHERE id = ANY($4::bigint[])",
        state.value,
        reason,
        at,
        sorted(ids),
    )
