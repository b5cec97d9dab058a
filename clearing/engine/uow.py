"""The engine's unit of work: everything a chunk reads from or writes to other domains.

One unit of work is one database transaction (the chunk's). It exposes a repository per
domain the engine reaches into: the registry (terminals, cards), the lists (pending loads),
the clinic (insurance splits), settlement (the last settled day), the books (card balances,
accounts, transfers) and the engine's own cleared taps. `SqlUnitOfWork` is the real one, on
the chunk's connection; tests give the decision part of the engine fakes (Cosmic Python's
pattern: the service depends on these protocols, not on SQL).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from clearing import books
from clearing.engine import repository as repo
from clearing.engine.decide import (
    CardInfo,
    PendingLoadInfo,
    PostedTap,
    Purse,
    SplitInfo,
    Tap,
    TerminalInfo,
)
from clearing.lists import service as lists_service
from clearing.lists.models import PendingLoadState
from ledger import CreateTransferResult, Transfer
from ledger.port import LedgerPort


@functools.lru_cache(maxsize=1 << 19)
def account_id(name: str) -> int:
    """The ledger id of a chart account (validated once per name, then cached)."""
    return books.account_of(name).id


# A card's account name, several times per record (the name checks the card number each time).
card_account = functools.lru_cache(maxsize=1 << 19)(books.card)


# (release action id, override, reason it was released from) of a record's latest release.
Release = tuple[int, str | None, str | None]


class Registry(Protocol):
    async def terminals(self, terminal_ids: Iterable[str]) -> dict[str, TerminalInfo]: ...
    async def cards(self, card_nos: Iterable[str]) -> dict[str, CardInfo]: ...


class PendingLoads(Protocol):
    async def pending(self, load_ids: Iterable[str]) -> dict[str, PendingLoadInfo]: ...
    async def mark_delivered(self, load_ids: Sequence[str]) -> None: ...


class ClinicSplits(Protocol):
    async def splits(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SplitInfo]: ...


class SettledDays(Protocol):
    async def last_settled_day(self) -> date | None: ...


class Books(Protocol):
    async def balances(self, names: Sequence[str]) -> dict[str, tuple[int, int]]:
        """name -> (account id, credit available) of the accounts that exist."""
        ...

    async def ensure_accounts(self, names: Sequence[str]) -> dict[str, int]: ...
    async def create_transfers(
        self, transfers: Sequence[Transfer]
    ) -> list[CreateTransferResult]: ...


class ClearedTaps(Protocol):
    """The engine's own: taps already posted, and finance staff's releases."""

    async def near(self, chunk: Sequence[Tap]) -> list[PostedTap]: ...
    async def by_terminal(self, keys: Iterable[tuple[str, int]]) -> list[PostedTap]: ...
    async def highest_counters(
        self, keys: Iterable[tuple[str, Purse]]
    ) -> dict[tuple[str, Purse], int]: ...
    async def releases(self, tap_ids: Sequence[int]) -> dict[int, Release]: ...


class UnitOfWork(Protocol):
    """The repositories of one chunk's transaction (read-only members: a fake may narrow them)."""

    @property
    def registry(self) -> Registry: ...
    @property
    def loads(self) -> PendingLoads: ...
    @property
    def clinic(self) -> ClinicSplits: ...
    @property
    def settlement(self) -> SettledDays: ...
    @property
    def books(self) -> Books: ...
    @property
    def cleared(self) -> ClearedTaps: ...


class _SqlRegistry:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def terminals(self, terminal_ids: Iterable[str]) -> dict[str, TerminalInfo]:
        return await repo.terminal_infos(self.conn, terminal_ids)

    async def cards(self, card_nos: Iterable[str]) -> dict[str, CardInfo]:
        return await repo.card_infos(self.conn, card_nos)


class _SqlLoads:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def pending(self, load_ids: Iterable[str]) -> dict[str, PendingLoadInfo]:
        return await repo.pending_loads(self.conn, load_ids)

    async def mark_delivered(self, load_ids: Sequence[str]) -> None:
        """The pending loads leave the action list (the lists service owns that change)."""
        # Its own savepoint, committed (released) here: the chunk's rows are written inside a
        # savepoint of the engine's, and a session joining a savepoint without one of its own
        # would roll its changes back when it closes.
        session = AsyncSession(bind=self.conn, join_transaction_mode="create_savepoint")
        try:
            for load_id in load_ids:
                await lists_service.mark_pending_load(session, load_id, PendingLoadState.DELIVERED)
            await session.commit()
        finally:
            await session.close()


class _SqlClinic:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def splits(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SplitInfo]:
        return await repo.clinic_splits(self.conn, keys)


class _SqlSettledDays:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def last_settled_day(self) -> date | None:
        return await repo.last_settled_day(self.conn)


class _SqlBooks:
    def __init__(self, conn: AsyncConnection, ledger: LedgerPort) -> None:
        self.conn = conn
        self.ledger = ledger

    async def balances(self, names: Sequence[str]) -> dict[str, tuple[int, int]]:
        ids = [account_id(name) for name in names]
        available = await self.ledger.credits_available(ids, conn=self.conn)
        return {
            name: (i, credits)
            for name, i, credits in zip(names, ids, available, strict=True)
            if credits is not None
        }

    async def ensure_accounts(self, names: Sequence[str]) -> dict[str, int]:
        return await books.ensure_accounts(self.ledger, names, conn=self.conn)

    async def create_transfers(self, transfers: Sequence[Transfer]) -> list[CreateTransferResult]:
        return list(await self.ledger.create_transfers(list(transfers), conn=self.conn))


class _SqlClearedTaps:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def near(self, chunk: Sequence[Tap]) -> list[PostedTap]:
        return await repo.posted_near(self.conn, chunk)

    async def by_terminal(self, keys: Iterable[tuple[str, int]]) -> list[PostedTap]:
        return await repo.posted_by_terminal_keys(self.conn, keys)

    async def highest_counters(
        self, keys: Iterable[tuple[str, Purse]]
    ) -> dict[tuple[str, Purse], int]:
        return await repo.highest_counters(self.conn, keys)

    async def releases(self, tap_ids: Sequence[int]) -> dict[int, Release]:
        return await repo.release_overrides(self.conn, tap_ids)


class SqlUnitOfWork:
    """The unit of work of one chunk's transaction (`conn`), with the ledger it posts to."""

    def __init__(self, conn: AsyncConnection, ledger: LedgerPort) -> None:
        self.conn = conn
        self.registry = _SqlRegistry(conn)
        self.loads = _SqlLoads(conn)
        self.clinic = _SqlClinic(conn)
        self.settlement = _SqlSettledDays(conn)
        self.books = _SqlBooks(conn, ledger)
        self.cleared = _SqlClearedTaps(conn)
