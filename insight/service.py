"""Releases: stage the period, count each table in SQL, then apply the privacy rules and record
the budget spent. Takes a connection and never commits it (the caller owns the transaction).

A release's card keys are an HMAC of the card number under a random salt drawn for that release
and dropped as soon as the boardings are staged: keys of two releases cannot be linked, and no
one (not even the operator) can recompute them afterwards.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from insight import chaining, privacy, repository
from insight.errors import BudgetExhausted, PeriodInvalid, ReleaseNotFound
from insight.network import Network
from insight.settings import InsightSettings

PERIOD_DAYS_MAX = 92  # a quarter at most per release
TABLES = tuple(repository.TABLE_QUERIES)


@dataclass(frozen=True, slots=True)
class PublishedTable:
    """One table as published: key columns plus `count` (noisy); only cells of >= k riders."""

    name: str
    columns: tuple[str, ...]
    rows: list[list[Any]]
    epsilon: float
    noise_scale: float
    cells_suppressed: int


@dataclass(frozen=True, slots=True)
class Release:
    id: uuid.UUID
    created_at: datetime
    created_by: str
    period_start: date
    period_end: date
    epsilon: float
    k_riders_min: int
    taps_per_rider_day_max: int
    tables: dict[str, PublishedTable] = field(default_factory=dict)

    def days(self) -> list[date]:
        count = (self.period_end - self.period_start).days + 1
        return [self.period_start + timedelta(days=i) for i in range(count)]


def check_period(start: date, end: date) -> None:
    if start > end:
        raise PeriodInvalid(f"the period starts ({start}) after it ends ({end})")
    if (end - start).days + 1 > PERIOD_DAYS_MAX:
        raise PeriodInvalid(f"a release covers at most {PERIOD_DAYS_MAX} days: split the period")


def publish_table(
    name: str,
    columns: Sequence[str],
    counted: Sequence[tuple[Any, ...]],
    plan: privacy.NoisePlan,
    k: int,
    noise: privacy.Noise = privacy.add_noise,
) -> PublishedTable:
    """Noise every cell, then keep only those that pass the k-rider rule (pure). The cells are
    put in key order first (SQL's GROUP BY returns them in no set order), so a seeded `noise`
    gives each cell the same draw in every run."""
    counted = sorted(counted, key=_key)
    noisy = noise([row[-2] for row in counted], plan)
    rows: list[list[Any]] = []
    for row, count in zip(counted, noisy, strict=True):
        if privacy.publishable(row[-1], count, k):
            rows.append([_plain(value) for value in row[:-2]] + [count])
    return PublishedTable(
        name=name,
        columns=(*columns, "count"),
        rows=rows,
        epsilon=plan.epsilon,
        noise_scale=plan.scale,
        cells_suppressed=len(counted) - len(rows),
    )


def _key(row: Sequence[Any]) -> list[str]:
    return [str(_plain(value)) for value in row[:-2]]


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


async def stage_period(
    conn: AsyncConnection, settings: InsightSettings, network: Network, start: date, end: date
) -> None:
    """Stage the period's boardings under fresh card keys and the chaining lookup (temporary
    tables of this transaction)."""
    salt = secrets.token_bytes(privacy.SALT_BYTES)
    pads = privacy.hmac_pads(salt)
    del salt  # only the pads reach the database, inside this transaction's statement
    await repository.stage_rides(
        conn,
        pads=pads,
        start=start,
        end=end,
        timezone=network.timezone,
        per_day_max=settings.taps_per_rider_day_max,
    )
    served = await repository.route_stops(conn)
    alight = chaining.alight_table(served, network.stops, settings.walk_m_max)
    await repository.stage_alight(conn, alight)


async def build_release(
    conn: AsyncConnection,
    settings: InsightSettings,
    network: Network,
    start: date,
    end: date,
    *,
    created_by: str,
    noise: privacy.Noise = privacy.add_noise,
) -> Release:
    """Spend `settings.epsilon_per_release` on [start, end] and publish every table (`noise`:
    OpenDP's, unless a test passes a seeded one)."""
    repository.require_postgresql(conn)
    check_period(start, end)
    await repository.take_budget_lock(conn)
    spent = await repository.epsilon_spent_max(conn, start, end)
    if spent + settings.epsilon_per_release > settings.epsilon_per_day_max * (1 + 1e-9):
        raise BudgetExhausted(
            f"releases already spent epsilon {spent:g} on a day of {start}..{end}; another "
            f"{settings.epsilon_per_release:g} would pass the cap of "
            f"{settings.epsilon_per_day_max:g} (ONECARD_INSIGHT_EPSILON_PER_DAY_MAX)"
        )
    await stage_period(conn, settings, network, start, end)
    plan = privacy.plan_noise(
        privacy.split_budget(settings.epsilon_per_release, len(TABLES)),
        settings.taps_per_rider_day_max,
    )
    tables: dict[str, PublishedTable] = {}
    for name in TABLES:
        columns, _ = repository.TABLE_QUERIES[name]
        counted = await repository.table_counts(conn, name)
        tables[name] = publish_table(name, columns, counted, plan, settings.k_riders_min, noise)
    release = Release(
        id=uuid.uuid4(),
        created_at=datetime.now(UTC),
        created_by=created_by,
        period_start=start,
        period_end=end,
        epsilon=settings.epsilon_per_release,
        k_riders_min=settings.k_riders_min,
        taps_per_rider_day_max=settings.taps_per_rider_day_max,
        tables=tables,
    )
    await repository.insert_release(conn, _row(release))
    return release


def _row(release: Release) -> dict[str, Any]:
    return {
        "id": release.id,
        "created_at": release.created_at,
        "created_by": release.created_by,
        "period_start": release.period_start,
        "period_end": release.period_end,
        "epsilon": release.epsilon,
        "k_riders_min": release.k_riders_min,
        "taps_per_rider_day_max": release.taps_per_rider_day_max,
        "published": {
            name: {
                "columns": list(t.columns),
                "rows": t.rows,
                "epsilon": t.epsilon,
                "noise_scale": t.noise_scale,
                "cells_suppressed": t.cells_suppressed,
            }
            for name, t in release.tables.items()
        },
    }


def _release(row: dict[str, Any]) -> Release:
    tables = {
        name: PublishedTable(
            name=name,
            columns=tuple(t["columns"]),
            rows=t["rows"],
            epsilon=t["epsilon"],
            noise_scale=t["noise_scale"],
            cells_suppressed=t["cells_suppressed"],
        )
        for name, t in row["published"].items()
    }
    fields = {k: v for k, v in row.items() if k != "published"}
    return Release(**fields, tables=tables)


async def load_release(conn: AsyncConnection, release_id: uuid.UUID) -> Release:
    found = await repository.get_release(conn, release_id)
    if found is None:
        raise ReleaseNotFound(f"no release {release_id}: `onecard insight releases` lists them")
    return _release(dict(found))


async def budget_ledger(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every release with what it spent, newest first (no published tables)."""
    return [dict(row) for row in await repository.list_releases(conn)]
