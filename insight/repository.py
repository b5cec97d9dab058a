"""Every query of insight, in PostgreSQL SQL on a caller-owned AsyncConnection.

The month is never brought into Python: one statement stages the period's bus boardings in a
temporary table (ON COMMIT DROP) with the card number replaced by its per-release HMAC and the
trip-chaining neighbours computed by window functions; each published table is then one GROUP BY
over it. Reads `cleared_taps` (joined to `tap_records` for the boarding stop and the fare rule,
whose "|" marks a transfer the fare engine applied) by name; writes only `insight_releases`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from insight.errors import DatabaseUnsupported
from insight.models import releases

# Serialises releases so two never spend the same budget at once (pg_advisory_xact_lock).
BUDGET_LOCK_KEY = 0x1A51_6E7
RELEASES_LISTED_MAX = 500
# Memory PostgreSQL may use per sort or hash of a release's statements (SET LOCAL: this
# transaction only). The default 4 MB makes the chaining sort spill to disk.
WORK_MEM = "256MB"

_STAGE_RIDES = """
CREATE TEMPORARY TABLE insight_rides ON COMMIT DROP AS
WITH boardings AS (
  -- The rider key is HMAC-SHA256(salt, card number), first 64 bits, computed per tap: a join
  -- back to a per-card key table let the planner pick a quadratic nested loop on tables whose
  -- statistics are stale (seen on a busy test database: minutes instead of a second).
  SELECT ('x' || encode(substr(
           sha256(:opad || sha256(:ipad || convert_to(ct.card_no, 'UTF8'))), 1, 8), 'hex')
         )::bit(64)::bigint AS rider,
         ct.business_day AS day, ct.occurred_at AS at, ct.card_counter AS counter,
         ct.route_id AS route, tr.stop_id AS stop, ct.card_type,
         strpos(tr.fare_rule, '|') > 0 AS transfer
  FROM cleared_taps ct JOIN tap_records tr ON tr.id = ct.tap_record_id
  WHERE ct.kind = 'purchase' AND ct.route_id IS NOT NULL AND tr.stop_id IS NOT NULL
    AND ct.business_day BETWEEN :start AND :end
)
SELECT * FROM (
  SELECT b.rider, b.day, b.route, b.stop, b.card_type, b.transfer,
         extract(hour FROM b.at AT TIME ZONE :tz)::int AS hour,
         (extract(isodow FROM b.day) >= 6) AS weekend,
         row_number() OVER w AS n,
         lag(b.route) OVER w AS prev_route,
         lead(b.stop) OVER w AS next_stop,
         first_value(b.stop) OVER w AS first_stop
  FROM boardings b
  WINDOW w AS (PARTITION BY b.rider, b.day ORDER BY b.at, b.counter)
) AS chained
WHERE n <= :per_day_max
"""


def require_postgresql(conn: AsyncConnection) -> None:
    if conn.dialect.name != "postgresql":
        raise DatabaseUnsupported(
            "insight aggregates with PostgreSQL window functions: set ONECARD_DATABASE_URL to "
            "a postgresql+asyncpg:// database"
        )


async def take_budget_lock(conn: AsyncConnection) -> None:
    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": BUDGET_LOCK_KEY})


async def epsilon_spent_max(conn: AsyncConnection, start: date, end: date) -> float:
    """The largest epsilon already spent on any one business day of [start, end]."""
    row = await conn.execute(
        text(
            "SELECT coalesce(max(spent), 0) FROM ("
            " SELECT d, sum(r.epsilon) AS spent"
            " FROM generate_series(CAST(:start AS date), CAST(:end AS date), interval '1 day') d"
            " JOIN insight_releases r ON d BETWEEN r.period_start AND r.period_end"
            " GROUP BY d) AS per_day"
        ),
        {"start": start, "end": end},
    )
    return float(row.scalar_one())


async def stage_rides(
    conn: AsyncConnection,
    *,
    pads: tuple[bytes, bytes],
    start: date,
    end: date,
    timezone: str,
    per_day_max: int,
) -> None:
    """Stage the period's boardings (bounded per rider-day)."""
    ipad, opad = pads
    await conn.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    await conn.execute(text("DROP TABLE IF EXISTS insight_rides"))
    await conn.execute(
        text(_STAGE_RIDES),
        {
            "ipad": ipad,
            "opad": opad,
            "start": start,
            "end": end,
            "tz": timezone,
            "per_day_max": per_day_max,
        },
    )
    await conn.execute(text("ANALYZE insight_rides"))


async def route_stops(conn: AsyncConnection) -> dict[str, frozenset[str]]:
    """The stops each line was boarded at in the staged period (the stops it serves)."""
    rows = await conn.execute(text("SELECT DISTINCT route, stop FROM insight_rides"))
    served: dict[str, set[str]] = {}
    for route, stop in rows:
        served.setdefault(route, set()).add(stop)
    return {route: frozenset(stops) for route, stops in served.items()}


async def stage_alight(conn: AsyncConnection, alight: Mapping[tuple[str, str], str]) -> None:
    """The chaining rule's lookup table: (line, target stop) -> alighting stop."""
    await conn.execute(text("DROP TABLE IF EXISTS insight_alight"))
    await conn.execute(
        text(
            "CREATE TEMPORARY TABLE insight_alight (route text, target text, alight text,"
            " PRIMARY KEY (route, target)) ON COMMIT DROP"
        )
    )
    if alight:
        keys = list(alight)
        await conn.execute(
            text(
                "INSERT INTO insight_alight SELECT * FROM unnest("
                "CAST(:routes AS text[]), CAST(:targets AS text[]), CAST(:alights AS text[]))"
            ),
            {
                "routes": [route for route, _ in keys],
                "targets": [target for _, target in keys],
                "alights": [alight[key] for key in keys],
            },
        )


# Each published table: its key columns and the cells (keys..., count, riders). Every staged
# boarding (or trip) falls in exactly one cell of each (the sensitivity argument). Riders per cell
# are counted by a hash aggregate per (cell, rider) then per cell: PostgreSQL's count(DISTINCT)
# sorts its whole input instead (measured about 2x slower here).
_DESTINATION = (
    "LEFT JOIN insight_alight a ON a.route = r.route"
    " AND a.target = coalesce(r.next_stop, r.first_stop) AND a.alight <> r.stop"
)


def _cells(keys: str, source: str, where: str = "") -> str:
    width = keys.count(",") + 1
    inner = ", ".join(str(i) for i in range(1, width + 2))
    outer = ", ".join(str(i) for i in range(1, width + 1))
    return (
        f"SELECT {', '.join(f'k{i}' for i in range(width))}, sum(n)::bigint, count(*) FROM ("
        f"SELECT {', '.join(f'{k.strip()} AS k{i}' for i, k in enumerate(keys.split(',')))},"
        f" r.rider, count(*) AS n FROM {source} {where} GROUP BY {inner}) AS per_rider"
        f" GROUP BY {outer}"
    )


TABLE_QUERIES: dict[str, tuple[tuple[str, ...], str]] = {
    "line_day": (("route_id", "business_day"), _cells("r.route, r.day", "insight_rides r")),
    "line_hour": (
        ("route_id", "weekend", "hour", "card_type"),
        _cells("r.route, r.weekend, r.hour, r.card_type", "insight_rides r"),
    ),
    "stop_hour": (
        ("stop_id", "weekend", "hour"),
        _cells("r.stop, r.weekend, r.hour", "insight_rides r"),
    ),
    "transfers": (
        ("from_route_id", "to_route_id"),
        _cells(
            "r.prev_route, r.route",
            "insight_rides r",
            "WHERE r.transfer AND r.prev_route IS NOT NULL",
        ),
    ),
    "od": (
        ("origin_stop_id", "destination_stop_id", "card_type"),
        _cells(
            "r.stop, a.alight, r.card_type",
            f"insight_rides r {_DESTINATION}",
            "WHERE a.alight IS NOT NULL",
        ),
    ),
    "od_outcome": (
        ("destination_inferred",),
        _cells("a.alight IS NOT NULL", f"insight_rides r {_DESTINATION}"),
    ),
}


async def table_counts(conn: AsyncConnection, name: str) -> list[tuple[Any, ...]]:
    """One published table before privacy: rows of (keys..., count, distinct riders)."""
    _, query = TABLE_QUERIES[name]
    result = await conn.execute(text(query))
    return [tuple(row) for row in result]


async def insert_release(conn: AsyncConnection, row: Mapping[str, Any]) -> None:
    await conn.execute(releases.insert().values(**row))


async def list_releases(conn: AsyncConnection) -> list[Mapping[str, Any]]:
    columns = [c for c in releases.c if c.name != "published"]
    result = await conn.execute(
        releases.select()
        .with_only_columns(*columns)
        .order_by(releases.c.created_at.desc())
        .limit(RELEASES_LISTED_MAX)
    )
    return [dict(row._mapping) for row in result]


async def get_release(conn: AsyncConnection, release_id: uuid.UUID) -> Mapping[str, Any] | None:
    result = await conn.execute(releases.select().where(releases.c.id == release_id))
    row = result.first()
    if row is None:
        return None
    found = dict(row._mapping)
    if isinstance(found["published"], str):  # some drivers hand JSON back as text
        found["published"] = json.loads(found["published"])
    return found
