"""A synthetic month loaded into the PostgreSQL test database (committed once per module, removed
after), and helpers that run a release inside a transaction that is rolled back.

Imported explicitly by the insight tests (not a conftest)."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from insight import repository, service, synthetic
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


async def release(
    engine: AsyncEngine, start: date, end: date, settings: InsightSettings | None = None
) -> service.Release:
    async with engine.connect() as conn:
        made = await service.build_release(
            conn, settings or InsightSettings(), NETWORK, start, end, created_by="test"
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
