"""Every query of staff accounts, their wrong passwords and their tokens (never commits)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.auth.models import ApiToken, Role
from clearing.staff.models import StaffAccount, StaffFailedLogin

# The roles a person signs in with; operators and residents have their own credentials.
STAFF_ROLES = (Role.FINANCE, Role.ADMIN, Role.PLANNER)


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


async def revoke_tokens(session: AsyncSession, username: str, at: datetime) -> None:
    """Revoke every staff token standing for `username` (console sign-ins and API tokens)."""
    await session.execute(
        update(ApiToken)
        .where(
            ApiToken.subject == username,
            ApiToken.role.in_(STAFF_ROLES),
            ApiToken.revoked_at.is_(None),
        )
        .values(revoked_at=at)
    )
