"""Bills paid on the phone through Stripe: the bill workflow (clearing/billing) starts and
settles the payment; this module makes its PaymentIntent and hands Stripe's success back.

Never commits. The payment is started (and committed by the endpoint) before Stripe is asked,
so the webhook always finds it by the intent's metadata.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from clearing.billing import service as billing_service
from clearing.billing.adapter import adapters_from
from clearing.billing.models import BillPayment
from clearing.billing.rules import BillAlreadyPaid
from clearing.books import chart
from clearing.mobile.gateway import Intent
from clearing.mobile.models import EventOutcome
from clearing.settings import Settings
from ledger.port import LedgerPort

KIND = "bill"


async def start(
    session: AsyncSession,
    resident_id: str,
    *,
    biller_code: str,
    account_no: str,
    bill_id: str,
    amount_fen: int,
    request_id: str,
    settings: Settings,
) -> BillPayment:
    """The resident's payment of a looked-up bill (the same request again: the same payment).
    `resident_id` names an account (clearing.residents.dependencies.CurrentResident)."""
    return await billing_service.start_bill_payment(
        session,
        resident_id=resident_id,
        biller_code=biller_code,
        account_no=account_no,
        bill_id=bill_id,
        amount_fen=amount_fen,
        channel="stripe",
        request_id=request_id,
        adapters=adapters_from(settings),
        cap_fen=settings.bill_amount_fen_max,
    )


def intent_metadata(payment: BillPayment) -> dict[str, str]:
    return {
        "kind": KIND,
        "payment_id": payment.id,
        "resident_id": payment.resident_id or "",
        "biller": payment.biller_code,
    }


def idempotency_key(payment: BillPayment) -> str:
    return f"onecard-{payment.id}"


async def paid(
    session: AsyncSession, ledger: LedgerPort | None, intent: Intent
) -> tuple[EventOutcome, str, str | None]:
    """Stripe has the bill's money: the bill workflow posts it to payable:<biller>, writes the
    receipt and queues the biller's confirmation. Returns the outcome and the payment id whose
    confirmation to dispatch after the commit."""
    payment_id = intent.metadata.get("payment_id", "")
    try:
        receipt = await billing_service.bill_paid(
            session,
            payment_id=payment_id,
            paid_from_account=chart.STRIPE_BALANCE,
            external_ref=intent.id,
            ledger=ledger,
        )
    except BillAlreadyPaid as refused:
        # Paid twice (another intent, or at a counter): the money is in stripe:balance,
        # unplaced; staff refund this intent in Stripe.
        return EventOutcome.REFUSED, refused.detail, None
    return EventOutcome.APPLIED, f"bill payment {payment_id} paid: receipt {receipt.id}", payment_id
