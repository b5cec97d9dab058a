"""Reconciliation test fixtures: a world (registry, ledger, clearing engine, signed synthetic
taps; tests/clearing/test_engine.py's builder) on a fresh SQLite file or on a PostgreSQL database
of these tests alone (`<test db>_recon`, emptied before each test: the runs commit)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from clearing import db
from clearing.calendar import BusinessCalendar
from reconciliation.run import RunSummary, run_day
from tests.clearing.test_engine import World, _reset_pg, build_world


@pytest.fixture(scope="session")
def recon_pg_url(pg_url: str) -> str:
    parsed = make_url(pg_url)
    name = f"{parsed.database}_recon"

    async def recreate() -> None:
        admin = create_async_engine(
            parsed.set(database="postgres").render_as_string(hide_password=False),
            isolation_level="AUTOCOMMIT",
        )
        try:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            await admin.dispose()

    asyncio.run(recreate())
    url = parsed.set(database=name).render_as_string(hide_password=False)
    db.upgrade(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def recon_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "recon_pg_url")


@pytest.fixture
async def world(recon_url: str, tmp_path: Path) -> AsyncIterator[World]:
    if recon_url.startswith("postgresql"):
        await _reset_pg(recon_url)
    w = await build_world(recon_url, tmp_path)
    try:
        yield w
    finally:
        await w.ledger.close()


CALENDAR = BusinessCalendar()


def past_day(days_ago: int) -> date:
    return CALENDAR.business_day(datetime.now(UTC)) - timedelta(days=days_ago)


async def reconcile(world: World, day: date) -> RunSummary:
    async with world.ledger.engine.begin() as conn:
        return await run_day(conn, day, calendar=CALENDAR)
