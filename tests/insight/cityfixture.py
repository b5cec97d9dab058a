"""A synthetic month loaded into the PostgreSQL test database (committed once per module, removed
after), and helpers that run a release inside a transaction that is rolled back.

Imported explicitly by the insight tests (not a conftest)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import date
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from insight import privacy, repository, service, synthetic
from insight.network import load_network
from insight.settings import InsightSettings

NETWORK = load_network()


def dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def reset(url: str) -> asyncpg.Connection:
    connection = await asyncpg.connect(dsn(url))
    await synthetic.remove_synthetic(connection)
    await connection.execute("DELETE FROM insight_releases")
    return connection


def seeded_noise(seed: int) -> privacy.Noise:
    """Discrete Laplace noise of a plan's scale (as OpenDP's) from a seeded generator, so a test
    that asserts on published numbers sees the same numbers in every run: OpenDP's own noise
    cannot be seeded, and one run in a few hundred would move a month's trend past an assertion.
    Draws are the difference of two geometric variables, P(X = x) ~ exp(-|x| / scale)."""
    rng = random.Random(seed)

    def geometric(q: float) -> int:
        return math.floor(math.log(1.0 - rng.random()) / math.log(q))

    def noise(counts: Sequence[int], plan: privacy.NoisePlan) -> list[int]:
        q = math.exp(-1.0 / plan.scale)
        return [count + geometric(q) - geometric(q) for count in counts]

    return noise


async def release(
    engine: AsyncEngine,
    start: date,
    end: date,
    settings: InsightSettings | None = None,
    *,
    seed: int = 0,
) -> service.Release:
    """A release of [start, end] with noise seeded by `seed` (rolled back: it spends no budget)."""
    async with engine.connect() as conn:
        made = await service.build_release(
            conn,
            settings or InsightSettings(),
            NETWORK,
            start,
            end,
            created_by="test",
            noise=seeded_noise(seed),
        )
        await conn.rollback()
    return made


async def exact_counts(engine: AsyncEngine, start: date, end: date) -> dict[str, list[Any]]:
    """Every table's cells before privacy (keys..., count, riders), for checking the SQL."""
    settings = InsightSettings()
    async with engine.connect() as conn:
        await service.stage_period(conn, settings, NETWORK, start, end)
        out = {name: await repository.table_counts(conn, name) for name in service.TABLES}
        await conn.rollback()
    return out
