"""Every query of the terminal lists: heads, versions, changes, pending loads, fetches."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.lists.models import (
    ListChange,
    ListFetch,
    ListHead,
    ListKind,
    ListOp,
    ListVersion,
    PendingLoad,
    PendingLoadState,
)


async def head_version(session: AsyncSession, kind: ListKind) -> int:
    result = await session.execute(select(ListHead.version).where(ListHead.list_kind == kind))
    return int(result.scalar_one())


async def bump_version(session: AsyncSession, kind: ListKind) -> int:
    """Atomically take the next version of a list (row lock held to the end of the transaction)."""
    result = await session.execute(
        update(ListHead)
        .where(ListHead.list_kind == kind)
        .values(version=ListHead.version + 1)
        .returning(ListHead.version)
    )
    return int(result.scalar_one())


async def add_version(
    session: AsyncSession, kind: ListKind, version: int, created_at: datetime, reason: str
) -> None:
    session.add(ListVersion(list_kind=kind, version=version, created_at=created_at, reason=reason))


async def add_changes(
    session: AsyncSession, kind: ListKind, version: int, changes: list[tuple[str, ListOp]]
) -> None:
    session.add_all(
        ListChange(list_kind=kind, version=version, entry_key=key, op=op) for key, op in changes
    )
    await session.flush()


async def changes_after(
    session: AsyncSession, kind: ListKind, since: int, up_to: int
) -> list[tuple[str, ListOp]]:
    """Changes with since < version <= up_to, oldest first."""
    result = await session.execute(
        select(ListChange.entry_key, ListChange.op)
        .where(
            ListChange.list_kind == kind,
            ListChange.version > since,
            ListChange.version <= up_to,
        )
        .order_by(ListChange.version, ListChange.id)
    )
    return [(key, ListOp(op)) for key, op in result.all()]


async def change_count_after(session: AsyncSession, kind: ListKind, since: int) -> int:
    result = await session.execute(
        select(func.count())
        .select_from(ListChange)
        .where(ListChange.list_kind == kind, ListChange.version > since)
    )
    return int(result.scalar_one())


async def version_created_at(
    session: AsyncSession, kind: ListKind, version: int
) -> datetime | None:
    result = await session.execute(
        select(ListVersion.created_at).where(
            ListVersion.list_kind == kind, ListVersion.version == version
        )
    )
    return result.scalar_one_or_none()


async def pending_load(session: AsyncSession, load_id: str) -> PendingLoad | None:
    return await session.get(PendingLoad, load_id)


async def pending_loads_by_id(session: AsyncSession, load_ids: list[str]) -> list[PendingLoad]:
    if not load_ids:
        return []
    result = await session.execute(select(PendingLoad).where(PendingLoad.load_id.in_(load_ids)))
    return list(result.scalars())


async def pending_loads_due_to_expire(
    session: AsyncSession, now: datetime, limit: int
) -> list[PendingLoad]:
    result = await session.execute(
        select(PendingLoad)
        .where(PendingLoad.state == PendingLoadState.PENDING, PendingLoad.expires_at <= now)
        .order_by(PendingLoad.expires_at)
        .limit(limit)
    )
    return list(result.scalars())


async def record_fetch(
    session: AsyncSession,
    terminal_id: str,
    kind: ListKind,
    since: int,
    version: int,
    fetched_at: datetime,
) -> None:
    session.add(
        ListFetch(
            terminal_id=terminal_id,
            list_kind=kind,
            since_version=since,
            version=version,
            fetched_at=fetched_at,
        )
    )
    await session.flush()


async def first_fetch_at_or_after(
    session: AsyncSession, kind: ListKind, version: int, terminal_ids: list[str]
) -> dict[str, datetime]:
    """For each terminal, when it first fetched `version` or later."""
    if not terminal_ids:
        return {}
    result = await session.execute(
        select(ListFetch.terminal_id, func.min(ListFetch.fetched_at))
        .where(
            ListFetch.list_kind == kind,
            ListFetch.version >= version,
            ListFetch.terminal_id.in_(terminal_ids),
        )
        .group_by(ListFetch.terminal_id)
    )
    return {terminal_id: fetched_at for terminal_id, fetched_at in result.all()}


async def last_fetched_versions(
    session: AsyncSession, kind: ListKind, terminal_ids: list[str]
) -> dict[str, int]:
    if not terminal_ids:
        return {}
    result = await session.execute(
        select(ListFetch.terminal_id, func.max(ListFetch.version))
        .where(ListFetch.list_kind == kind, ListFetch.terminal_id.in_(terminal_ids))
        .group_by(ListFetch.terminal_id)
    )
    return {terminal_id: int(version) for terminal_id, version in result.all()}


async def listed_keys(session: AsyncSession, kind: ListKind, keys: list[str]) -> set[str]:
    """Which of `keys` are on the list now (their latest change is an addition)."""
    if not keys:
        return set()
    latest = (
        select(ListChange.entry_key, func.max(ListChange.id).label("last_id"))
        .where(ListChange.list_kind == kind, ListChange.entry_key.in_(keys))
        .group_by(ListChange.entry_key)
        .subquery()
    )
    result = await session.execute(
        select(ListChange.entry_key)
        .join(latest, ListChange.id == latest.c.last_id)
        .where(ListChange.op == ListOp.ADD)
    )
    return set(result.scalars())
