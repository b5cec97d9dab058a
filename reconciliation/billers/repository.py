"""The bill payments onecard made (clearing's bill_payments, paid), read for matcher 6."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.billing.models import BillPayment, PaymentStatus
from clearing.calendar import BusinessCalendar
from reconciliation.billers.matching import BillPaid


async def paid_bills(
    conn: AsyncConnection, start: datetime, end: datetime, calendar: BusinessCalendar
) -> list[BillPaid]:
    """Bills paid in [start, end), each on the business day of its payment."""
    rows = await conn.execute(
        select(BillPayment.id, BillPayment.biller_code, BillPayment.amount_fen,
               BillPayment.bill_id, BillPayment.paid_at)
        .where(
            BillPayment.status == PaymentStatus.PAID.value,
            BillPayment.paid_at >= start,
            BillPayment.paid_at < end,
        )
    )  # fmt: skip
    return [
        BillPaid(str(pid), str(biller), int(amount), str(bill), calendar.business_day(at))
        for pid, biller, amount, bill, at in rows
    ]


async def billers_paid(conn: AsyncConnection, start: datetime, end: datetime) -> list[str]:
    """The billers onecard asked to pay in [start, end) (whose files the run reads)."""
    rows = await conn.execute(
        select(BillPayment.biller_code)
        .where(BillPayment.created_at >= start, BillPayment.created_at < end)
        .distinct()
        .order_by(BillPayment.biller_code)
    )
    return [str(r[0]) for r in rows]


def days(first: date, last: date) -> list[date]:
    return [date.fromordinal(n) for n in range(first.toordinal(), last.toordinal() + 1)]
