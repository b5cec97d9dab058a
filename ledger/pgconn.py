"""The asyncpg connection under a SQLAlchemy connection, for statements sent straight to the
driver inside the caller's transaction (the ledger's write path and reads, and the clearing
service's hot paths): SQLAlchemy's statement and row handling cost more Python than PostgreSQL
spends on statements of thousands of rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.errors import invariant


async def asyncpg_of(conn: AsyncConnection) -> Any:
    """The asyncpg connection under `conn`, inside `conn`'s database transaction."""
    raw = await conn.get_raw_connection()
    adapted = raw.dbapi_connection
    # SQLAlchemy's asyncpg adapter opens its transaction at the first statement it runs; a
    # statement sent straight to asyncpg must not run before it (it would autocommit).
    if getattr(adapted, "_transaction", False) is None:
        await adapted._start_transaction()
    driver = raw.driver_connection
    invariant(
        driver is not None and driver.is_in_transaction(),
        "statements go straight to asyncpg only inside a transaction",
    )
    return driver
