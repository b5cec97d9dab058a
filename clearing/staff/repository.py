"""Every query of staff accounts, sessions and wrong passwords (never commits)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.staff.models import StaffAccount, StaffFailedLogin, StaffSession


async def account_by_username(
    session: AsyncSession, username: str, *, for_update: bool = False
) -> StaffAccount | None:
    query = select(StaffAccount).where(StaffAccount.username == username)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def account_by_id(session: AsyncSession, staff_id: int) -> StaffAccount | None:
    return await session.get(StaffAccount, staff_id)


async def list_accounts(session: AsyncSession) -> list[StaffAccount]:
    return list((await session.execute(select(StaffAccount).order_by(StaffAccount.id))).scalars())


async def failures_since(session: AsyncSession, staff_id: int, since: datetime) -> list[datetime]:
    query = select(StaffFailedLogin.at).where(
        StaffFailedLogin.staff_id == staff_id, StaffFailedLogin.at > since
    )
    return list((await session.execute(query.order_by(StaffFailedLogin.at))).scalars())


async def session_by_hash(session: AsyncSession, token_sha256: str) -> StaffSession | None:
    query = select(StaffSession).where(StaffSession.token_sha256 == token_sha256)
    return (await session.execute(query)).scalar_one_or_none()


async def revoke_sessions(session: AsyncSession, staff_id: int, at: datetime) -> None:
    await session.execute(
        update(StaffSession)
        .where(StaffSession.staff_id == staff_id, StaffSession.revoked_at.is_(None))
        .values(revoked_at=at)
    )
