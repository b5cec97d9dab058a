"""Every query on reconciliation's own tables (runs, match counts, breaks, break history).

Reads and writes only the recon_* tables; the checks' queries on the ledger and clearing's
tables live with each check. Never commits: the run, the endpoint or the command owns the
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciliation.models import (
    OPEN_STATUSES,
    BreakStatus,
    EventAction,
    RunState,
    break_events,
    breaks,
    matches,
    runs,
)

KEYS_PER_LOOKUP = 500  # (kind, key) pairs looked up per query: well under any bind limit
PAGE_MAX = 1000


# One run at a time (two at once would both insert the same new breaks): a transaction-scoped
# advisory lock on PostgreSQL; on the embedded SQLite the single writer lock serialises them.
RUN_LOCK_KEY = 0x5245434F4E  # "RECON"


# The run's own settings on PostgreSQL, for its transaction only (SET LOCAL):
# - jit off: the checks are a few large statements over one day; PostgreSQL judged them costly
#   enough to compile, and compiling took longer than running them (0.4 s of a 0.9 s statement
#   at 200,000 taps a day, bench/reconcile.py);
# - work_mem: the cards check sorts the day's transactions by card and counter (~90 bytes
#   each); at the default 4 MB that sort went to disk from ~50,000 taps a day.
RUN_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL work_mem = '256MB'")


async def lock_runs(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_advisory_xact_lock(RUN_LOCK_KEY)))


async def apply_run_settings(conn: AsyncConnection) -> None:
    """RUN_SETTINGS, for the rest of the run's transaction (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        for statement in RUN_SETTINGS:
            await conn.execute(text(statement))


async def ledger_window(
    conn: AsyncConnection, business_day: date, posted_through: int, day_start: int
) -> tuple[int, int]:
    """The ledger time [since, until) a run of `business_day` reads the ledger's entries in, so
    that the windows of the days reconciled chain with no gap and no overlap, whatever hour each
    ran at and in whatever order the days were run:
    - since: where this day's earlier finished run started; else where the last finished run of
      an earlier day ended; else, if earlier days were reconciled before windows were kept
      (migration 0014: each read its own day's hours), `day_start` (the day's start in ledger
      time), so an upgraded city does not read its whole history at once; else 0 (the first run
      of all reads the whole history);
    - until: where the first finished run of a later day started; else past what the ledger had
      committed (`posted_through`, ledger.reader.posted_through, read by the run's transaction).
    A re-run of the latest day therefore reads its first window and what was posted since."""
    finished = runs.c.state == RunState.FINISHED.value
    since = (
        await conn.execute(
            select(runs.c.ledger_since_ns)
            .where(finished, runs.c.business_day == business_day)
            .where(runs.c.ledger_since_ns.is_not(None))
            .order_by(runs.c.id.desc())
            .limit(1)
        )
    ).scalar()
    if since is None:
        since, unbounded = (
            await conn.execute(
                select(
                    func.max(runs.c.ledger_until_ns),
                    func.count().filter(runs.c.ledger_until_ns.is_(None)),
                ).where(finished, runs.c.business_day < business_day)
            )
        ).one()
        if since is None and unbounded:
            since = day_start
    later = (
        await conn.execute(
            select(func.min(runs.c.ledger_since_ns)).where(
                finished, runs.c.business_day > business_day
            )
        )
    ).scalar()
    start = int(since or 0)
    end = int(later) if later is not None else posted_through + 1
    return start, max(start, end)


async def start_run(
    conn: AsyncConnection,
    business_day: date,
    trigger: str,
    at: datetime,
    ledger_window: tuple[int, int] | None = None,
    *,
    accounts_swept: bool = False,
) -> int:
    since, until = ledger_window or (None, None)
    row = await conn.execute(
        insert(runs)
        .values(
            business_day=business_day,
            trigger=trigger,
            state=RunState.RUNNING.value,
            started_at=at,
            breaks_found=0,
            breaks_new=0,
            breaks_closed=0,
            breaks_open=0,
            ledger_since_ns=since,
            ledger_until_ns=until,
            ledger_accounts_swept=accounts_swept,
        )
        .returning(runs.c.id)
    )
    return int(row.scalar_one())


async def finish_run(conn: AsyncConnection, run_id: int, at: datetime, **counts: int) -> None:
    await conn.execute(
        update(runs)
        .where(runs.c.id == run_id)
        .values(state=RunState.FINISHED.value, finished_at=at, **counts)
    )


async def add_match(
    conn: AsyncConnection,
    run_id: int,
    check_name: str,
    *,
    matched: int,
    total: int,
    breaks_found: int,
    seconds: float,
) -> None:
    await conn.execute(
        insert(matches).values(
            run_id=run_id,
            check_name=check_name,
            matched=matched,
            total=total,
            breaks=breaks_found,
            seconds=seconds,
        )
    )


async def breaks_by_key(
    conn: AsyncConnection, kind: str, keys: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The stored breaks of one kind among `keys`, by key."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), KEYS_PER_LOOKUP):
        chunk = list(keys[start : start + KEYS_PER_LOOKUP])
        rows = await conn.execute(
            select(breaks).where(breaks.c.kind == kind, breaks.c.key.in_(chunk))
        )
        for row in rows.mappings():
            found[row["key"]] = dict(row)
    return found


async def open_standing_keys(conn: AsyncConnection, kind: str) -> list[str]:
    """The keys of the open standing breaks of one kind, for a check that reads only part of
    its source each run to look at again (what it does not find, the run closes)."""
    rows = await conn.execute(
        select(breaks.c.key).where(
            breaks.c.kind == kind,
            breaks.c.scope == "standing",
            breaks.c.status.in_([s.value for s in OPEN_STATUSES]),
        )
    )
    return [str(r[0]) for r in rows]


async def insert_break(conn: AsyncConnection, values: dict[str, Any]) -> int:
    row = await conn.execute(insert(breaks).values(**values).returning(breaks.c.id))
    return int(row.scalar_one())


async def update_break(conn: AsyncConnection, break_id: int, **values: Any) -> None:
    await conn.execute(update(breaks).where(breaks.c.id == break_id).values(**values))


async def add_event(
    conn: AsyncConnection,
    break_id: int,
    *,
    at: datetime,
    actor: str,
    action: EventAction,
    status: BreakStatus,
    note: str = "",
    run_id: int | None = None,
) -> None:
    await conn.execute(
        insert(break_events).values(
            break_id=break_id,
            at=at,
            actor=actor,
            action=action.value,
            status=status.value,
            note=note,
            run_id=run_id,
        )
    )


async def unseen_open_breaks(
    conn: AsyncConnection, kinds: Iterable[str], business_day: date, run_id: int
) -> list[int]:
    """Open breaks of these kinds this run did not find, within the run's reach: day-scoped
    breaks of its own day, standing breaks first found on or before it."""
    rows = await conn.execute(
        select(breaks.c.id).where(
            breaks.c.kind.in_(list(kinds)),
            breaks.c.status.in_([s.value for s in OPEN_STATUSES]),
            breaks.c.last_run_id != run_id,
            or_(
                and_(breaks.c.scope == "day", breaks.c.business_day == business_day),
                and_(breaks.c.scope == "standing", breaks.c.business_day <= business_day),
            ),
        )
    )
    return [int(r[0]) for r in rows]


async def count_open(conn: AsyncConnection) -> int:
    row = await conn.execute(
        select(func.count())
        .select_from(breaks)
        .where(breaks.c.status.in_([s.value for s in OPEN_STATUSES]))
    )
    return int(row.scalar_one())


async def list_runs(
    conn: AsyncConnection, *, business_day: date | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    query = select(runs).order_by(runs.c.id.desc()).limit(min(limit, PAGE_MAX))
    if business_day is not None:
        query = query.where(runs.c.business_day == business_day)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def get_run(conn: AsyncConnection, run_id: int) -> dict[str, Any] | None:
    row = (await conn.execute(select(runs).where(runs.c.id == run_id))).mappings().first()
    return dict(row) if row is not None else None


async def run_matches(conn: AsyncConnection, run_ids: Sequence[int]) -> list[dict[str, Any]]:
    if not run_ids:
        return []
    rows = await conn.execute(
        select(matches)
        .where(matches.c.run_id.in_(list(run_ids)))
        .order_by(matches.c.run_id, matches.c.check_name)
    )
    return [dict(r) for r in rows.mappings()]


async def latest_runs_per_day(
    conn: AsyncConnection, first: date, last: date
) -> list[dict[str, Any]]:
    """The last finished run of each business day in [first, last], oldest day first."""
    latest = (
        select(func.max(runs.c.id).label("id"))
        .where(
            runs.c.business_day >= first,
            runs.c.business_day <= last,
            runs.c.state == RunState.FINISHED.value,
        )
        .group_by(runs.c.business_day)
        .subquery()
    )
    rows = await conn.execute(
        select(runs).where(runs.c.id.in_(select(latest.c.id))).order_by(runs.c.business_day)
    )
    return [dict(r) for r in rows.mappings()]


async def list_breaks(
    conn: AsyncConnection,
    *,
    statuses: Sequence[str] = (),
    kinds: Sequence[str] = (),
    business_day: date | None = None,
    assignee: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    query = (
        select(breaks)
        .where(breaks.c.id > after_id)
        .order_by(breaks.c.id)
        .limit(min(limit, PAGE_MAX))
    )
    if statuses:
        query = query.where(breaks.c.status.in_(list(statuses)))
    if kinds:
        query = query.where(breaks.c.kind.in_(list(kinds)))
    if business_day is not None:
        query = query.where(breaks.c.business_day == business_day)
    if assignee is not None:
        query = query.where(breaks.c.assignee == assignee)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def get_break(
    conn: AsyncConnection, break_id: int, *, for_update: bool = False
) -> dict[str, Any] | None:
    query = select(breaks).where(breaks.c.id == break_id)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row is not None else None


async def break_history(conn: AsyncConnection, break_id: int) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(break_events).where(break_events.c.break_id == break_id).order_by(break_events.c.id)
    )
    return [dict(r) for r in rows.mappings()]


async def breaks_of_day_report(conn: AsyncConnection, business_day: date) -> list[dict[str, Any]]:
    """Breaks a report of the day lists: open now, or seen by a run of that day."""
    rows = await conn.execute(
        select(breaks)
        .where(
            or_(
                breaks.c.status.in_([s.value for s in OPEN_STATUSES]),
                breaks.c.business_day == business_day,
            )
        )
        .order_by(breaks.c.kind, breaks.c.id)
        .limit(PAGE_MAX * 10)
    )
    return [dict(r) for r in rows.mappings()]
