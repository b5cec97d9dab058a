"""Every query of the clearing engine. Core SQL on a caller-owned AsyncConnection, in batches:
the hot path reads and writes thousands of rows per statement, never one per round trip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Date,
    Table,
    bindparam,
    column,
    func,
    insert,
    select,
    table,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.clinic.models import ClinicSplit
from clearing.engine import pg
from clearing.engine.decide import (
    CardInfo,
    PendingLoadInfo,
    PostedTap,
    Purse,
    SplitInfo,
    Tap,
    TerminalInfo,
)
from clearing.engine.models import (
    ClearedTap,
    ClearingRun,
    QuarantineAction,
    QuarantineActionRow,
    RunState,
    TapDisposition,
)
from clearing.engine.pg import TAP_FIELDS
from clearing.engine.rows import ClearedRow
from clearing.engine.shards import ALL_SHARDS, ShardRange, ShardRangeInvalid
from clearing.ingest.models import TapOpen, TapRecord
from clearing.lists.models import PendingLoad
from clearing.records import TapState
from clearing.registry.models import Card, Participant, Terminal

# One statement binds at most this many parameters (asyncpg and SQLite allow 32,767).
PARAMS_MAX = 30_000
# Serialises clearing chunks and settlement runs on PostgreSQL (SQLite has one writer anyway).
CLEARING_LOCK_KEY = 0x0C0C_A2D0

taps = cast(Table, TapRecord.__table__)
open_taps = cast(Table, TapOpen.__table__)
cleared = cast(Table, ClearedTap.__table__)
dispositions = cast(Table, TapDisposition.__table__)
runs = cast(Table, ClearingRun.__table__)
actions = cast(Table, QuarantineActionRow.__table__)
cards = cast(Table, Card.__table__)
terminals = cast(Table, Terminal.__table__)
participants = cast(Table, Participant.__table__)


def _is_pg(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


def is_postgresql(conn: AsyncConnection) -> bool:
    return _is_pg(conn)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def take_clearing_lock(conn: AsyncConnection) -> None:
    """Wait for the clearing lock for the rest of this transaction (PostgreSQL)."""
    if _is_pg(conn):
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLEARING_LOCK_KEY})


async def try_clearing_lock(conn: AsyncConnection) -> bool:
    """Take the clearing lock for the rest of this transaction if nobody holds it (PostgreSQL;
    SQLite has one writer and needs none). False: another run or a settlement holds it."""
    if not _is_pg(conn):
        return True
    taken = await conn.execute(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": CLEARING_LOCK_KEY}
    )
    return bool(taken.scalar())


async def other_running_runs(conn: AsyncConnection, run_id: int) -> list[int]:
    """The other clearing runs in progress (what a run waiting for the lock waits for)."""
    rows = await conn.execute(
        select(runs.c.id)
        .where(runs.c.state == RunState.RUNNING.value, runs.c.id != run_id)
        .order_by(runs.c.id)
    )
    return [int(r[0]) for r in rows]


async def count_received(conn: AsyncConnection) -> int:
    """Records still waiting to be cleared (by any run)."""
    count = await conn.execute(
        select(func.count()).select_from(open_taps).where(open_taps.c.state == TapState.RECEIVED)
    )
    return int(count.scalar() or 0)


async def ids_in_state(conn: AsyncConnection, ids: Sequence[int], state: TapState) -> set[int]:
    """Which of `ids` are still in `state` (another run may have cleared some meanwhile)."""
    found: set[int] = set()
    for part in _chunks(sorted(ids), PARAMS_MAX):
        rows = await conn.execute(
            select(taps.c.id).where(taps.c.id.in_(part), taps.c.state == state)
        )
        found.update(int(r[0]) for r in rows)
    return found


# SQLSTATE classes of a statement refused for the values it carried: 22 data exception (a value
# out of a column's range), 23 integrity constraint violation (a unique key taken).
_RECORD_SQLSTATE_CLASSES = ("22", "23")


def database_failure(error: BaseException) -> bool:
    """A failure of the database itself (connection lost, disk full, a lock or statement
    timeout, a serialization failure), not of the values a statement carried."""
    if isinstance(error, (IntegrityError, DataError)):
        return False
    if isinstance(error, SQLAlchemyError):
        return True
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] not in _RECORD_SQLSTATE_CLASSES
    if isinstance(error, (OSError, TimeoutError, ConnectionError)):
        return True
    # asyncpg's own errors without a SQLSTATE (a connection closed under us) are the database's.
    return type(error).__module__.startswith("asyncpg")


# A deadlock or a serialization failure: the database gave up this transaction, not the work.
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


def transient(error: BaseException) -> bool:
    """The database broke a deadlock (or a serialization conflict) by failing this transaction:
    the same work in a new transaction succeeds."""
    for candidate in (error, getattr(error, "orig", None), error.__cause__):
        sqlstate = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if sqlstate in _TRANSIENT_SQLSTATES:
            return True
    return False


# Errors that say the code is wrong, whatever record it ran on: never pinned on a record.
_CODE_ERRORS = (AttributeError, NameError, ImportError, NotImplementedError, RecursionError)


def record_tied(error: BaseException) -> bool:
    """The failure is tied to the records a statement or a rule was given: without the culprit
    the same work succeeds (a unique key taken, a value out of a column's range, a ValueError
    or OverflowError on a record's values). A database failure or a code error is not."""
    return not database_failure(error) and not isinstance(error, _CODE_ERRORS)


_TAP_COLUMNS = tuple(taps.c[name] for name in TAP_FIELDS)


def _tap(row: Any) -> Tap:
    return Tap(
        id=row.id,
        terminal_id=row.terminal_id,
        kind=row.kind,
        status=row.status,
        terminal_seq=row.terminal_seq,
        card_no=row.card_no,
        card_counter=row.card_counter,
        txn_type=row.txn_type,
        amount_fen=row.amount_fen,
        balance_before_fen=row.balance_before_fen,
        balance_after_fen=row.balance_after_fen,
        occurred_at=row.occurred_at,
        tac=row.tac.upper() if row.tac else None,
        card_type=row.card_type,
        full_fare_fen=row.full_fare_fen,
        route_id=row.route_id,
        insured_fen=row.insured_fen,
        visit_id=row.visit_id,
        load_id=row.load_id,
        offline_fallback=bool(row.offline_fallback),
    )


async def next_received(
    conn: AsyncConnection, limit: int, after_id: int = 0, shards: ShardRange = ALL_SHARDS
) -> list[Tap]:
    """The oldest staged records not yet cleared, in arrival order (PostgreSQL's read-ahead
    takes only those after `after_id`: the last record of the chunk still being cleared), of
    the cards of `shards` only (PostgreSQL)."""
    if _is_pg(conn):
        return await pg.next_received(conn, limit, after_id, shards)
    if shards != ALL_SHARDS:
        raise ShardRangeInvalid("clearing by shards needs PostgreSQL")
    if after_id:
        raise ValueError("after_id is for PostgreSQL's read-ahead only")
    rows = await conn.execute(
        text(_TAP_SELECT_RAW + _OPEN + " ORDER BY o.tap_record_id LIMIT :limit"),
        {"state": TapState.RECEIVED.value, "limit": limit},
    )
    return [_raw_tap(row) for row in rows]


# SQLite stores any value in any column: the engine reads the raw values and checks each
# field's type itself, so one record with a wrong type cannot stop the read of its chunk.
_TAP_SELECT_RAW = (
    f"SELECT {', '.join('t.' + name for name in TAP_FIELDS)}, t.quarantine_reason"
    " FROM tap_open AS o JOIN tap_records AS t ON t.id = o.tap_record_id"
)
# The records in one open state (tap_open: migration 0010_tapopen).
_OPEN = " WHERE o.state = :state"


def _at(*names: str) -> tuple[int, ...]:
    return tuple(TAP_FIELDS.index(name) for name in names)


_INT_FIELDS = _at(
    "terminal_seq", "card_counter", "txn_type", "amount_fen", "balance_before_fen",
    "balance_after_fen", "full_fare_fen", "insured_fen",
)  # fmt: skip
_STR_FIELDS = _at("terminal_id", "kind", "status", "card_no", "card_type")
_OPTIONAL_STR_FIELDS = _at("tac", "route_id", "visit_id", "load_id")
_TAC, _OCCURRED_AT, _OFFLINE_FALLBACK = _at("tac", "occurred_at", "offline_fallback")
_UNREADABLE_AT = datetime(1970, 1, 1, tzinfo=UTC)


def _raw_tap(row: Any) -> Tap:
    """A Tap from raw stored values; a value of the wrong type becomes a placeholder of the
    right one (never consistent: -1, its repr) and is named in `Tap.unreadable`."""
    values = list(row[: len(TAP_FIELDS)])
    problems: list[str] = []

    def wrong(index: int) -> None:
        problems.append(f"{TAP_FIELDS[index]}={values[index]!r:.40}")

    for index in _INT_FIELDS:
        if type(values[index]) is not int:
            wrong(index)
            values[index] = -1
    for index in _STR_FIELDS:
        if type(values[index]) is not str:
            wrong(index)
            values[index] = repr(values[index])[:40]
    for index in _OPTIONAL_STR_FIELDS:
        if values[index] is not None and type(values[index]) is not str:
            wrong(index)
            values[index] = repr(values[index])[:40]
    if values[_TAC] is not None:
        values[_TAC] = values[_TAC].upper()
    if values[_OFFLINE_FALLBACK] not in (0, 1):
        wrong(_OFFLINE_FALLBACK)
    values[_OFFLINE_FALLBACK] = values[_OFFLINE_FALLBACK] == 1
    values[_OCCURRED_AT] = _stored_utc(values[_OCCURRED_AT])
    if values[_OCCURRED_AT] is None:
        wrong(_OCCURRED_AT)
        values[_OCCURRED_AT] = _UNREADABLE_AT
    fields: Any = values  # positional, in the order of Tap's fields
    return (
        replace(Tap(*fields), unreadable="; ".join(problems) or None) if problems else Tap(*fields)
    )


def _stored_utc(value: Any) -> datetime | None:
    """A timestamp as SQLite stores it (ISO text, UTC), or None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


async def next_received_ids(
    conn: AsyncConnection, limit: int, shards: ShardRange = ALL_SHARDS
) -> list[int]:
    """The ids of what `next_received` would return (PostgreSQL)."""
    return await pg.next_received_ids(conn, limit, shards)


async def next_retryable(
    conn: AsyncConnection,
    reasons: Sequence[str],
    after_id: int,
    limit: int,
    shards: ShardRange = ALL_SHARDS,
) -> list[tuple[Tap, str]]:
    """Quarantined records whose reason a later record may cure, after `after_id` (of the
    cards of `shards`: PostgreSQL)."""
    in_shards = ""
    bounds: dict[str, int] = {}
    if shards != ALL_SHARDS:
        if not _is_pg(conn):
            raise ShardRangeInvalid("clearing by shards needs PostgreSQL")
        in_shards = " AND o.shard >= :low AND o.shard < :high"
        bounds = {"low": shards[0], "high": shards[1]}
    rows = await conn.execute(
        text(
            _TAP_SELECT_RAW + _OPEN + " AND t.quarantine_reason IN :reasons"
            f" AND o.tap_record_id > :after_id{in_shards} ORDER BY o.tap_record_id LIMIT :limit"
        ).bindparams(bindparam("reasons", expanding=True)),
        {
            "state": TapState.QUARANTINED.value,
            "reasons": list(reasons),
            "after_id": after_id,
            "limit": limit,
            **bounds,
        },
    )
    out: list[tuple[Tap, str]] = []
    for row in rows:
        if _is_pg(conn):
            values: Any = list(row[: len(TAP_FIELDS)])
            values[_TAC] = values[_TAC].upper() if values[_TAC] else None
            tap = Tap(*values)
        else:
            tap = _raw_tap(row)
        out.append((tap, str(row[len(TAP_FIELDS)])))
    return out


async def taps_by_id(conn: AsyncConnection, ids: Sequence[int]) -> list[Tap]:
    out: list[Tap] = []
    for part in _chunks(list(ids), PARAMS_MAX):
        rows = await conn.execute(select(*_TAP_COLUMNS).where(taps.c.id.in_(part)))
        out.extend(_tap(row) for row in rows)
    return sorted(out, key=lambda tap: tap.id)


async def terminal_infos(
    conn: AsyncConnection, terminal_ids: Iterable[str]
) -> dict[str, TerminalInfo]:
    """The terminals asked for that exist, with their owner's participant code. Only a chunk's
    own: a metropolis has tens of thousands of terminals, which every chunk read whole."""
    wanted = sorted(set(terminal_ids))
    if _is_pg(conn):
        return await pg.terminal_infos(conn, wanted) if wanted else {}
    found: dict[str, TerminalInfo] = {}
    query = select(
        terminals.c.terminal_id, participants.c.code, terminals.c.kind, terminals.c.line
    ).select_from(terminals.join(participants, terminals.c.participant_id == participants.c.id))
    for part in _chunks(wanted, PARAMS_MAX):
        rows = await conn.execute(query.where(terminals.c.terminal_id.in_(part)))
        found.update({r[0]: TerminalInfo(r[1], str(r[2]), r[3]) for r in rows})
    return found


async def card_infos(conn: AsyncConnection, card_nos: Iterable[str]) -> dict[str, CardInfo]:
    wanted = sorted(set(card_nos))
    found: dict[str, CardInfo] = {}
    if _is_pg(conn) and wanted:
        return await pg.card_infos(conn, wanted)
    for part in _chunks(wanted, PARAMS_MAX):
        rows = await conn.execute(
            select(cards.c.card_no, cards.c.card_type, cards.c.scheme).where(
                cards.c.card_no.in_(part)
            )
        )
        found.update({r[0]: CardInfo(str(r[1]), r[2]) for r in rows})
    return found


_POSTED_COLUMNS = tuple(cleared.c[name] for name in pg.POSTED_FIELDS)


def _posted(row: Any) -> PostedTap:
    return PostedTap(
        row.tap_record_id,
        row.card_no,
        Purse(row.purse),
        row.card_counter,
        row.terminal_id,
        row.terminal_seq,
        row.txn_type,
        row.amount_fen,
        row.balance_before_fen,
        row.balance_after_fen,
        row.occurred_at,
    )


async def posted_by_card_keys(
    conn: AsyncConnection, keys: Iterable[tuple[str, Purse, int]]
) -> list[PostedTap]:
    wanted = sorted({(k[0], str(k[1]), k[2]) for k in keys})
    if not wanted:
        return []
    out: list[PostedTap] = []
    if _is_pg(conn):
        for part in _chunks(wanted, 50_000):
            rows = await conn.execute(
                text(
                    "SELECT c.tap_record_id, c.card_no, c.purse, c.card_counter, c.terminal_id,"
                    " c.terminal_seq, c.txn_type, c.amount_fen, c.balance_before_fen,"
                    " c.balance_after_fen, c.occurred_at FROM cleared_taps c"
                    " JOIN unnest(CAST(:cards AS varchar[]), CAST(:purses AS varchar[]),"
                    " CAST(:counters AS integer[])) AS k(card_no, purse, card_counter)"
                    " ON c.card_no = k.card_no AND c.purse = k.purse"
                    " AND c.card_counter = k.card_counter"
                ),
                {
                    "cards": [k[0] for k in part],
                    "purses": [k[1] for k in part],
                    "counters": [k[2] for k in part],
                },
            )
            out.extend(_posted(row) for row in rows)
        return out
    for part in _chunks(wanted, PARAMS_MAX // 3):
        rows = await conn.execute(
            select(*_POSTED_COLUMNS).where(
                tuple_(cleared.c.card_no, cleared.c.purse, cleared.c.card_counter).in_(part)
            )
        )
        out.extend(_posted(row) for row in rows)
    return out


async def posted_near(conn: AsyncConnection, chunk: Sequence[Tap]) -> list[PostedTap]:
    """Posted taps with the same card and purse as a record of `chunk` and a card counter at
    most one away from the record's: what deduplication and the balance chain look at."""
    if not _is_pg(conn):
        keys = []
        for tap in chunk:
            keys.append(tap.card_key)
            keys.append((tap.card_no, tap.purse, tap.card_counter - 1))
            keys.append((tap.card_no, tap.purse, tap.card_counter + 1))
        return await posted_by_card_keys(conn, keys)
    return await pg.posted_near(conn, chunk)


async def posted_by_terminal_keys(
    conn: AsyncConnection, keys: Iterable[tuple[str, int]]
) -> list[PostedTap]:
    wanted = sorted(set(keys))
    if not wanted:
        return []
    if _is_pg(conn):
        return await pg.posted_by_terminal_keys(conn, wanted)
    out: list[PostedTap] = []
    for part in _chunks(wanted, PARAMS_MAX // 2):
        rows = await conn.execute(
            select(*_POSTED_COLUMNS).where(
                tuple_(cleared.c.terminal_id, cleared.c.terminal_seq).in_(part)
            )
        )
        out.extend(_posted(row) for row in rows)
    return out


async def highest_counters(
    conn: AsyncConnection, keys: Iterable[tuple[str, Purse]]
) -> dict[tuple[str, Purse], int]:
    """The highest posted card counter per (card, purse): proves a torn tap happened."""
    wanted = sorted({(k[0], str(k[1])) for k in keys})
    found: dict[tuple[str, Purse], int] = {}
    for part in _chunks(wanted, PARAMS_MAX // 2):
        rows = await conn.execute(
            select(cleared.c.card_no, cleared.c.purse, func.max(cleared.c.card_counter))
            .where(tuple_(cleared.c.card_no, cleared.c.purse).in_(part))
            .group_by(cleared.c.card_no, cleared.c.purse)
        )
        found.update({(r[0], Purse(r[1])): r[2] for r in rows})
    return found


async def clinic_splits(
    conn: AsyncConnection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], SplitInfo]:
    splits = ClinicSplit.__table__
    wanted = sorted(set(keys))
    found: dict[tuple[str, str], SplitInfo] = {}
    for part in _chunks(wanted, PARAMS_MAX // 2):
        rows = await conn.execute(
            select(
                splits.c.participant_code,
                splits.c.visit_id,
                splits.c.card_no,
                splits.c.scheme,
                splits.c.bill_fen,
                splits.c.insured_fen,
                splits.c.patient_fen,
            ).where(tuple_(splits.c.participant_code, splits.c.visit_id).in_(part))
        )
        found.update({(r[0], r[1]): SplitInfo(r[2], r[3], r[4], r[5], r[6]) for r in rows})
    return found


async def pending_loads(
    conn: AsyncConnection, load_ids: Iterable[str]
) -> dict[str, PendingLoadInfo]:
    loads = PendingLoad.__table__
    wanted = sorted(set(load_ids))
    found: dict[str, PendingLoadInfo] = {}
    for part in _chunks(wanted, PARAMS_MAX):
        rows = await conn.execute(
            select(loads.c.load_id, loads.c.card_no, loads.c.amount_fen, loads.c.state).where(
                loads.c.load_id.in_(part)
            )
        )
        found.update({r[0]: PendingLoadInfo(r[1], r[2], str(r[3])) for r in rows})
    return found


async def release_overrides(
    conn: AsyncConnection, tap_ids: Sequence[int]
) -> dict[int, tuple[int, str | None, str | None]]:
    """For released records: the latest release (action id, override, reason released from).

    One range scan of the actions index over the ids' span, not a probe per id: few records are
    ever released, so the span holds few actions (measured: 15-30 ms of probes a chunk of 8,000)."""
    wanted = set(tap_ids)
    if not wanted:
        return {}
    rows = await conn.execute(
        select(actions.c.tap_record_id, actions.c.id, actions.c.override, actions.c.reason)
        .where(
            actions.c.tap_record_id.between(min(wanted), max(wanted)),
            actions.c.action == QuarantineAction.RELEASED,
        )
        .order_by(actions.c.id)
    )
    found: dict[int, tuple[int, str | None, str | None]] = {}
    for r in rows:
        if r[0] in wanted:
            found[r[0]] = (r[1], r[2], r[3])
    return found


# Settlement builds on the engine (it settles cleared taps): the engine names the one column it
# reads of settlement's table instead of importing it (test_engine_uow.py checks they agree).
settlement_runs = table("settlement_runs", column("business_day", Date))


async def last_settled_day(conn: AsyncConnection) -> date | None:
    """The latest business day settled (what a late tap's settlement day follows)."""
    found: date | None = (
        await conn.execute(select(func.max(settlement_runs.c.business_day)))
    ).scalar()
    return found


async def insert_cleared(conn: AsyncConnection, rows: list[ClearedRow]) -> None:
    """Insert posted taps (on PostgreSQL by COPY, inside the caller's transaction)."""
    if not rows:
        return
    if _is_pg(conn):
        await pg.insert_cleared(conn, rows)
        return
    await conn.execute(
        insert(cleared),
        [
            row._replace(
                transfer_id=_uuid_or_none(row.transfer_id),
                claim_transfer_id=_uuid_or_none(row.claim_transfer_id),
            )._asdict()
            for row in rows
        ],
    )


def _uuid_or_none(hex_id: str | None) -> uuid.UUID | None:
    return uuid.UUID(hex_id) if hex_id is not None else None


async def insert_dispositions(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(dispositions), rows)


async def insert_actions(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(actions), rows)


async def set_states(
    conn: AsyncConnection,
    changes: dict[tuple[TapState, str | None], list[int]],
    at: datetime,
) -> None:
    """Move records to their new state (and quarantine reason), grouped into few statements."""
    for (state, reason), ids in changes.items():
        if _is_pg(conn):
            await pg.set_state(conn, state, reason, ids, at)
            continue
        for part in _chunks(sorted(ids), PARAMS_MAX):
            await conn.execute(
                update(taps)
                .where(taps.c.id.in_(part))
                .values(state=state, quarantine_reason=reason, state_changed_at=at)
            )


# A run still "running" after this long died with its worker (tasks are killed after 1 h).
RUN_STALE_AFTER = timedelta(hours=2)


async def start_run(conn: AsyncConnection, trigger: str, at: datetime) -> int:
    await conn.execute(
        update(runs)
        .where(runs.c.state == RunState.RUNNING.value, runs.c.started_at < at - RUN_STALE_AFTER)
        .values(state=RunState.FAILED.value, finished_at=at)
    )
    result = await conn.execute(
        insert(runs)
        .values(
            trigger=trigger,
            state=RunState.RUNNING.value,
            started_at=at,
            chunks=0,
            records_seen=0,
            posted=0,
            duplicates=0,
            voided=0,
            quarantined=0,
            amount_fen_posted=0,
        )
        .returning(runs.c.id)
    )
    return int(result.scalar_one())


async def add_to_run(conn: AsyncConnection, run_id: int, **counts: int) -> None:
    await conn.execute(
        update(runs)
        .where(runs.c.id == run_id)
        .values(
            chunks=runs.c.chunks + 1,
            **{name: getattr(runs.c, name) + value for name, value in counts.items()},
        )
    )


async def finish_run(conn: AsyncConnection, run_id: int, state: RunState, at: datetime) -> None:
    await conn.execute(
        update(runs).where(runs.c.id == run_id).values(state=state.value, finished_at=at)
    )


async def run_row(conn: AsyncConnection, run_id: int) -> Any:
    return (await conn.execute(select(runs).where(runs.c.id == run_id))).one()


async def count_by_state(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(select(taps.c.state, func.count()).group_by(taps.c.state))
    return {str(r[0]): int(r[1]) for r in rows}
