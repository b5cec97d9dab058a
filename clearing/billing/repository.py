"""Every query of the bill workflow: payments, receipts and the confirmation outbox.

Only SQL: no rule, no commit (the caller owns the transaction).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.billing.models import (
    BillConfirmation,
    BillPayment,
    BillReceipt,
    ConfirmationState,
    PaymentStatus,
)


async def payment(session: AsyncSession, payment_id: str) -> BillPayment | None:
    return await session.get(BillPayment, payment_id)


async def payment_for_update(session: AsyncSession, payment_id: str) -> BillPayment | None:
    result = await session.execute(
        select(BillPayment).where(BillPayment.id == payment_id).with_for_update()
    )
    return result.scalar_one_or_none()


async def payment_by_request(
    session: AsyncSession, requester: str, request_id: str
) -> BillPayment | None:
    result = await session.execute(
        select(BillPayment).where(
            BillPayment.requester == requester, BillPayment.request_id == request_id
        )
    )
    return result.scalar_one_or_none()


async def paid_payment_of_bill(session: AsyncSession, paid_bill_key: str) -> BillPayment | None:
    result = await session.execute(
        select(BillPayment).where(BillPayment.paid_bill_key == paid_bill_key)
    )
    return result.scalar_one_or_none()


async def payment_by_external_ref(session: AsyncSession, external_ref: str) -> BillPayment | None:
    result = await session.execute(
        select(BillPayment).where(BillPayment.external_ref == external_ref)
    )
    return result.scalar_one_or_none()


async def list_payments(
    session: AsyncSession,
    *,
    biller_code: str | None,
    status: PaymentStatus | None,
    limit: int,
) -> list[tuple[BillPayment, BillConfirmation | None]]:
    query = (
        select(BillPayment, BillConfirmation)
        .outerjoin(BillConfirmation, BillConfirmation.payment_id == BillPayment.id)
        .order_by(BillPayment.created_at.desc(), BillPayment.id)
        .limit(limit)
    )
    if biller_code is not None:
        query = query.where(BillPayment.biller_code == biller_code)
    if status is not None:
        query = query.where(BillPayment.status == status)
    return [(p, c) for p, c in (await session.execute(query)).all()]


async def receipt_of_payment(session: AsyncSession, payment_id: str) -> BillReceipt | None:
    result = await session.execute(select(BillReceipt).where(BillReceipt.payment_id == payment_id))
    return result.scalar_one_or_none()


async def receipt(session: AsyncSession, receipt_id: str) -> BillReceipt | None:
    return await session.get(BillReceipt, receipt_id)


async def receipts_of(session: AsyncSession, resident_id: str, limit: int) -> list[BillReceipt]:
    result = await session.execute(
        select(BillReceipt)
        .where(BillReceipt.resident_id == resident_id)
        .order_by(BillReceipt.paid_at.desc(), BillReceipt.id)
        .limit(limit)
    )
    return list(result.scalars())


async def confirmation_for_update(
    session: AsyncSession, payment_id: str
) -> BillConfirmation | None:
    result = await session.execute(
        select(BillConfirmation).where(BillConfirmation.payment_id == payment_id).with_for_update()
    )
    return result.scalar_one_or_none()


async def confirmations_to_dispatch(
    session: AsyncSession, dispatched_before: datetime, limit: int
) -> list[str]:
    """Unacknowledged confirmations never dispatched, or dispatched before the given time."""
    result = await session.execute(
        select(BillConfirmation.payment_id)
        .where(
            BillConfirmation.state == ConfirmationState.PENDING,
            (BillConfirmation.dispatched_at.is_(None))
            | (BillConfirmation.dispatched_at < dispatched_before),
        )
        .order_by(BillConfirmation.created_at)
        .limit(limit)
    )
    return list(result.scalars())
