"""Every query of approval requests (never commits)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.approvals.models import ApprovalKind, ApprovalRequest, ApprovalState


async def by_id(session: AsyncSession, request_id: int) -> ApprovalRequest | None:
    return await session.get(ApprovalRequest, request_id)


async def for_update(session: AsyncSession, request_id: int) -> ApprovalRequest | None:
    """The request, locked against another officer deciding it at the same moment."""
    query = (
        select(ApprovalRequest)
        .where(ApprovalRequest.id == request_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def pending_for(
    session: AsyncSession, kind: ApprovalKind, target: str
) -> ApprovalRequest | None:
    query = select(ApprovalRequest).where(
        ApprovalRequest.kind == kind,
        ApprovalRequest.target == target,
        ApprovalRequest.state == ApprovalState.PENDING,
    )
    return (await session.execute(query)).scalar_one_or_none()


async def requests(
    session: AsyncSession,
    *,
    state: ApprovalState | None,
    kind: ApprovalKind | None,
    target: str | None,
    limit: int,
) -> list[ApprovalRequest]:
    query = select(ApprovalRequest)
    if state is not None:
        query = query.where(ApprovalRequest.state == state)
    if kind is not None:
        query = query.where(ApprovalRequest.kind == kind)
    if target is not None:
        query = query.where(ApprovalRequest.target == target)
    rows = await session.execute(query.order_by(ApprovalRequest.id.desc()).limit(limit))
    return list(rows.scalars())
