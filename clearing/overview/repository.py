"""Every query of the console's figures, on the caller's connection (reads only)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.engine.models import ClearedTap
from clearing.ingest.models import OPEN_RECORDS, TapOpen, TapRecord
from clearing.records import TapKind, TapState
from clearing.settlement.models import SettlementRun
from reconciliation.models import BreakStatus, breaks

cleared = cast(Table, ClearedTap.__table__)
taps = cast(Table, TapRecord.__table__)
open_taps = cast(Table, TapOpen.__table__)
runs = cast(Table, SettlementRun.__table__)
OPEN_BREAK = (BreakStatus.OPEN.value, BreakStatus.ASSIGNED.value, BreakStatus.EXPLAINED.value)


async def cleared_by_participant(conn: AsyncConnection, day: date) -> list[tuple[str, int, int]]:
    """(participant, taps, fares_fen + subsidy_fen + insured_fen) of the records cleared for
    business day `day`, loads excluded (they are card money, nobody's revenue)."""
    revenue = cleared.c.amount_fen + cleared.c.subsidy_fen + cleared.c.insured_fen
    rows = await conn.execute(
        select(cleared.c.participant_code, func.count(), func.sum(revenue))
        .where(cleared.c.business_day == day, cleared.c.kind != TapKind.LOAD.value)
        .group_by(cleared.c.participant_code)
        .order_by(cleared.c.participant_code)
    )
    return [(r[0], int(r[1]), int(r[2] or 0)) for r in rows]


async def by_day_and_line(
    conn: AsyncConnection, first: date, last: date
) -> list[tuple[date, str, int, int]]:
    """(business day, line, rides, revenue fen) of the bus rides cleared for those days."""
    revenue = cleared.c.amount_fen + cleared.c.subsidy_fen
    line = func.coalesce(cleared.c.route_id, "")
    rows = await conn.execute(
        select(cleared.c.business_day, line, func.count(), func.sum(revenue))
        .where(
            cleared.c.business_day >= first,
            cleared.c.business_day <= last,
            cleared.c.kind == TapKind.PURCHASE.value,
            cleared.c.route_id.is_not(None),
        )
        .group_by(cleared.c.business_day, line)
        .order_by(cleared.c.business_day, line)
    )
    return [(r[0], r[1], int(r[2]), int(r[3] or 0)) for r in rows]


async def quarantined_since(conn: AsyncConnection) -> list[datetime]:
    """When each held record was received (its age in quarantine)."""
    rows = await conn.execute(
        select(taps.c.received_at)
        .select_from(OPEN_RECORDS)
        .where(open_taps.c.state == TapState.QUARANTINED.value)
    )
    return [r[0] for r in rows]


async def open_breaks_since(conn: AsyncConnection) -> list[tuple[datetime, int]]:
    """(first seen, amount fen) of every break not yet resolved or written off."""
    rows = await conn.execute(
        select(breaks.c.first_seen_at, breaks.c.amount_fen).where(breaks.c.status.in_(OPEN_BREAK))
    )
    return [(r[0], int(r[1])) for r in rows]


async def settlement_runs(conn: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    """The latest settled days, newest first: every column of their runs."""
    rows = await conn.execute(select(runs).order_by(runs.c.business_day.desc()).limit(limit))
    return [dict(row._mapping) for row in rows]


async def breaks_to_work(conn: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    """Breaks not yet resolved or written off, oldest first."""
    rows = await conn.execute(
        select(breaks)
        .where(breaks.c.status.in_(OPEN_BREAK))
        .order_by(breaks.c.first_seen_at, breaks.c.id)
        .limit(limit)
    )
    return [dict(row._mapping) for row in rows]
