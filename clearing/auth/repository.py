"""Every query of authentication: tokens by hash, nonces."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.auth.models import ApiToken, TerminalNonce


async def token_by_hash(session: AsyncSession, token_sha256: str) -> ApiToken | None:
    result = await session.execute(select(ApiToken).where(ApiToken.token_sha256 == token_sha256))
    return result.scalar_one_or_none()


async def token_by_id(session: AsyncSession, token_pk: int) -> ApiToken | None:
    return await session.get(ApiToken, token_pk)


async def list_tokens(session: AsyncSession) -> list[ApiToken]:
    result = await session.execute(select(ApiToken).order_by(ApiToken.id))
    return list(result.scalars())


async def remember_nonce(
    session: AsyncSession, terminal_id: str, nonce: str, seen_at: datetime
) -> bool:
    """Store a nonce; False if this terminal already used it (a replay).

    ON CONFLICT DO NOTHING makes two concurrent uses of one nonce safe: the second waits for
    the first's transaction and then inserts nothing.
    """
    values = {"terminal_id": terminal_id, "nonce": nonce, "seen_at": seen_at}
    dialect = session.bind.dialect.name if session.bind is not None else ""
    statement: Any
    if dialect == "postgresql":
        statement = postgresql.insert(TerminalNonce).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(TerminalNonce).values(values).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two supported backends
        statement = insert(TerminalNonce).values(values)
    result = await session.execute(statement.returning(TerminalNonce.nonce))
    return result.first() is not None


async def forget_nonces_before(session: AsyncSession, terminal_id: str, before: datetime) -> None:
    await session.execute(
        delete(TerminalNonce).where(
            TerminalNonce.terminal_id == terminal_id, TerminalNonce.seen_at < before
        )
    )
