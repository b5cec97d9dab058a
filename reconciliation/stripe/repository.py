"""What clearing posted for Stripe: paid top-ups (with the fee it booked) and bills paid on the
phone (posted from stripe:balance), read from clearing's tables. Reads only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.billing.models import BillPayment, PaymentChannel, PaymentStatus
from clearing.mobile.models import Topup, TopupState
from reconciliation.stripe.matching import PostedPayment

# A top-up in these states was paid at Stripe and posted (a refund or expiry came after).
PAID_STATES = (
    TopupState.SUCCEEDED.value,
    TopupState.DELIVERED.value,
    TopupState.REFUNDED.value,
    TopupState.EXPIRED.value,
)
STRIPE_ACCOUNT = "stripe:balance"


async def posted_payments(
    conn: AsyncConnection, start: datetime, end: datetime
) -> list[PostedPayment]:
    """Top-ups asked for and bills paid on the phone in [start, end), posted for an intent."""
    topups = await conn.execute(
        select(Topup.payment_intent_id, Topup.topup_id, Topup.amount_fen, Topup.fee_fen,
               Topup.created_at)
        .where(
            Topup.payment_intent_id.is_not(None),
            Topup.state.in_(PAID_STATES),
            Topup.created_at >= start,
            Topup.created_at < end,
        )
    )  # fmt: skip
    bills = await conn.execute(
        select(BillPayment.external_ref, BillPayment.id, BillPayment.amount_fen,
               BillPayment.created_at)
        .where(
            BillPayment.channel == PaymentChannel.STRIPE.value,
            BillPayment.status == PaymentStatus.PAID.value,
            BillPayment.paid_from_account == STRIPE_ACCOUNT,
            BillPayment.external_ref.is_not(None),
            BillPayment.created_at >= start,
            BillPayment.created_at < end,
        )
    )  # fmt: skip
    out = [
        PostedPayment(str(pi), "topup", ref, int(a), int(f or 0), at)
        for pi, ref, a, f, at in topups
    ]
    out += [PostedPayment(str(pi), "bill", ref, int(a), None, at) for pi, ref, a, at in bills]
    return out
