"""Statements sent straight to asyncpg inside a SQLAlchemy transaction (PostgreSQL's hot paths:
ingestion's uploads, the clearing engine's chunks), where SQLAlchemy's statement and row handling
would cost more Python than PostgreSQL spends on the statement itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection


class NotInTransaction(RuntimeError):
    """A raw statement outside a transaction would commit on its own."""


async def asyncpg_of(conn: AsyncConnection) -> Any:
    """The asyncpg connection under `conn`, inside `conn`'s database transaction."""
    raw = await conn.get_raw_connection()
    adapted = raw.dbapi_connection
    # SQLAlchemy's asyncpg adapter opens its transaction at its first statement; a statement sent
    # straight to asyncpg must not run before it (it would autocommit).
    if getattr(adapted, "_transaction", False) is None:
        await adapted._start_transaction()
    found = raw.driver_connection
    if found is None or not found.is_in_transaction():
        raise NotInTransaction("raw statements are sent only inside a transaction")
    return found
