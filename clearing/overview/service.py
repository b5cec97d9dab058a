"""The finance console's figures: today at a glance, and the series its charts draw.

Reads only, on the caller's connection. The business day and its cut-off come from the
settlement calendar, so "today" is the day the engine is clearing into, not the UTC date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.calendar import BusinessCalendar
from clearing.overview import repository
from clearing.overview.ageing import AgeBucket, age_buckets
from clearing.quarantine import service as quarantine_service

SERIES_DAYS_MAX = 92  # a chart covers a quarter at most
SETTLED_DAYS_SHOWN = 7


@dataclass(frozen=True, slots=True)
class OperatorRevenue:
    participant_code: str
    taps: int
    revenue_fen: int  # fares + concession subsidy + insured share: what the operator earns


@dataclass(frozen=True, slots=True)
class SettledDay:
    business_day: date
    settled_at: datetime
    actor: str
    participants: int
    taps: int
    gross_fen: int
    commission_fen: int
    net_fen: int


@dataclass(frozen=True, slots=True)
class Glance:
    business_day: date
    closes_at: datetime  # the day's cut-off (UTC)
    taps_cleared: int
    revenue: tuple[OperatorRevenue, ...]
    quarantined: int
    quarantine_by_reason: dict[str, int]
    quarantine_oldest_at: datetime | None
    quarantine_ageing: tuple[AgeBucket, ...]
    last_settled_day: date | None
    last_closed_day: date
    last_closed_day_settled: bool
    settled: tuple[SettledDay, ...]
    open_breaks: int
    open_breaks_fen: int
    break_ageing: tuple[AgeBucket, ...]

    @property
    def revenue_fen(self) -> int:
        return sum(row.revenue_fen for row in self.revenue)


@dataclass(frozen=True, slots=True)
class LinePoint:
    business_day: date
    line: str
    rides: int
    revenue_fen: int


async def glance(conn: AsyncConnection, calendar: BusinessCalendar, now: datetime) -> Glance:
    """Today at a glance: the current business day's clearing, the quarantine, settlement and
    reconciliation as they stand at `now`."""
    day = calendar.business_day(now)
    revenue = tuple(
        OperatorRevenue(code, count, fen)
        for code, count, fen in await repository.cleared_by_participant(conn, day)
    )
    held = await repository.quarantined_since(conn)
    breaks = await repository.open_breaks_since(conn)
    settled = tuple(
        SettledDay(
            row["business_day"],
            row["created_at"],
            row["actor"],
            row["participants"],
            row["taps"],
            row["gross_fen"],
            row["commission_fen"],
            row["net_fen"],
        )
        for row in await repository.settlement_runs(conn, SETTLED_DAYS_SHOWN)
    )
    last_closed = calendar.last_closed_day(now)
    return Glance(
        business_day=day,
        closes_at=calendar.day_end(day),
        taps_cleared=sum(row.taps for row in revenue),
        revenue=revenue,
        quarantined=len(held),
        quarantine_by_reason=await quarantine_service.counts_by_reason(conn),
        quarantine_oldest_at=min(held, default=None),
        quarantine_ageing=age_buckets(held, now),
        last_settled_day=settled[0].business_day if settled else None,
        last_closed_day=last_closed,
        last_closed_day_settled=bool(settled) and settled[0].business_day >= last_closed,
        settled=settled,
        open_breaks=len(breaks),
        open_breaks_fen=sum(abs(fen) for _, fen in breaks),
        break_ageing=age_buckets((seen for seen, _ in breaks), now),
    )


def series_window(last: date, days: int) -> tuple[date, date]:
    """The first and last day of a chart of `days` days ending on `last` (bounded)."""
    days = max(1, min(days, SERIES_DAYS_MAX))
    return last - timedelta(days=days - 1), last


async def by_day_and_line(conn: AsyncConnection, first: date, last: date) -> list[LinePoint]:
    """Rides and revenue per business day and bus line, for the charts (at most
    SERIES_DAYS_MAX days: a longer range is cut to its last ones)."""
    first = max(first, last - timedelta(days=SERIES_DAYS_MAX - 1))
    return [LinePoint(*row) for row in await repository.by_day_and_line(conn, first, last)]


async def break_ageing(conn: AsyncConnection, now: datetime) -> tuple[AgeBucket, ...]:
    return age_buckets((seen for seen, _ in await repository.open_breaks_since(conn)), now)


BREAKS_SHOWN_MAX = 200


async def breaks_to_work(conn: AsyncConnection, limit: int = BREAKS_SHOWN_MAX) -> list[dict]:
    """Open, assigned and explained breaks, oldest first (at most BREAKS_SHOWN_MAX)."""
    return await repository.breaks_to_work(conn, max(1, min(limit, BREAKS_SHOWN_MAX)))
