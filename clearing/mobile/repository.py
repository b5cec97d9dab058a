"""Every query of the mobile channel (top-ups and the Stripe events seen)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.mobile.models import StripeEvent, Topup, TopupState

TOPUPS_PAGE_MAX = 100


async def topup(session: AsyncSession, topup_id: str) -> Topup | None:
    return await session.get(Topup, topup_id)


async def topup_for_update(session: AsyncSession, topup_id: str) -> Topup | None:
    """The top-up, locked until the transaction ends: one event or request changes it at a time."""
    result = await session.execute(
        select(Topup)
        .where(Topup.topup_id == topup_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def topup_id_of_intent(session: AsyncSession, payment_intent_id: str) -> str | None:
    result = await session.execute(
        select(Topup.topup_id).where(Topup.payment_intent_id == payment_intent_id)
    )
    return result.scalar_one_or_none()


async def topup_id_of_load(session: AsyncSession, load_id: str) -> str | None:
    result = await session.execute(select(Topup.topup_id).where(Topup.load_id == load_id))
    return result.scalar_one_or_none()


async def topups_of_resident(
    session: AsyncSession, resident_id: str, limit: int = TOPUPS_PAGE_MAX
) -> list[Topup]:
    result = await session.execute(
        select(Topup)
        .where(Topup.resident_id == resident_id)
        .order_by(Topup.created_at.desc(), Topup.topup_id)
        .limit(min(limit, TOPUPS_PAGE_MAX))
    )
    return list(result.scalars())


async def flagged_topups(session: AsyncSession, limit: int = TOPUPS_PAGE_MAX) -> list[Topup]:
    result = await session.execute(
        select(Topup)
        .where(Topup.flag.is_not(None))
        .order_by(Topup.updated_at.desc())
        .limit(min(limit, TOPUPS_PAGE_MAX))
    )
    return list(result.scalars())


async def in_flight_fen(session: AsyncSession, card_no: str, since: datetime) -> int:
    """Top-ups of the card being paid (created after `since`, not yet decided by Stripe)."""
    result = await session.execute(
        select(func.coalesce(func.sum(Topup.amount_fen), 0)).where(
            Topup.card_no == card_no,
            Topup.state.in_((TopupState.CREATED, TopupState.REQUIRES_ACTION)),
            Topup.created_at >= since,
        )
    )
    return int(result.scalar_one())


async def event(session: AsyncSession, event_id: str) -> StripeEvent | None:
    return await session.get(StripeEvent, event_id)
