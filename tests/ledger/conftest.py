"""Fixtures of the ledger tests.

- `ledger_url`: each test runs twice, on a fresh SQLite file and on the PostgreSQL test database
  (shared; tests keep apart by naming their accounts in their own namespace).
- `fresh_pg_url`: a PostgreSQL database of its own, migrated, dropped afterwards (for tests of
  crashes, corruption and whole-database checks).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from clearing import db
from tests.conftest import PG_URL_DEFAULT


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture(params=["sqlite", "postgresql"])
def isolated_url(request: pytest.FixtureRequest) -> str:
    """Like ledger_url, but PostgreSQL gets a database of its own: for tests that move the
    ledger's clock forward (expiry), which must not leak into the shared test database."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("fresh_pg_url")


def _admin_dsn(url: str) -> tuple[str, str]:
    parsed = make_url(url)
    dsn = f"postgresql://{parsed.username or 'postgres'}@{parsed.host or '127.0.0.1'}:{parsed.port or 5432}/postgres"
    return dsn, parsed.database or "onecard_test"


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    base = os.environ.get("ONECARD_TEST_DATABASE_URL", PG_URL_DEFAULT)
    dsn, name = _admin_dsn(base)
    fresh = f"{name}_x{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(dsn, f'CREATE DATABASE "{fresh}"'))
    url = make_url(base).set(database=fresh).render_as_string(hide_password=False)
    try:
        db.upgrade(url)
        yield url
    finally:
        asyncio.run(_admin(dsn, f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)'))


@pytest.fixture
def ns() -> str:
    """A namespace for this test's account names and transfer keys."""
    return uuid.uuid4().hex[:12]
