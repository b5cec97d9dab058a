"""Request-scoped dependencies: the database session (the request's transaction) and settings.

The session commits when the endpoint returns and rolls back when it raises, before the
response is sent (dependency scope "function"): a 200 means the work is durable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clearing.settings import Settings
from ledger.errors import invariant
from ledger.port import LedgerPort


def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    return request.app.state.sessionmaker


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with _sessionmaker(request)() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


def _settings(request: Request) -> Settings:
    """The settings `create_app` was given (never re-read from the environment mid-flight)."""
    settings = getattr(request.app.state, "settings", None)
    invariant(isinstance(settings, Settings), "create_app stores its Settings on app.state")
    return cast(Settings, settings)


# Exit code runs when the endpoint returns, before the response is sent.
def ledger_of(request: Request) -> LedgerPort | None:
    """The app's ledger, or None where the app runs without one (card money then cannot move)."""
    return cast("LedgerPort | None", request.app.state.ledger)


SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(_settings)]
