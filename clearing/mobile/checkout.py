"""Paying on the phone, start to Stripe: a top-up or a bill payment is stored and committed
first (so Stripe's webhook always finds it), then its PaymentIntent is made with an
idempotency key derived from the resident's request id (the same request never charges twice).

Shared by the API (clearing/mobile/endpoints.py) and the web pages (clearing/web). This is the
one place that commits in the middle of a request, on purpose: before Stripe is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from clearing.billing.models import BillPayment, PaymentStatus
from clearing.mobile import bills, rules, service
from clearing.mobile.errors import PaymentDeclined
from clearing.mobile.gateway import Intent, StripeGateway
from clearing.mobile.models import PaymentMethodType, Topup
from clearing.mobile.service import TopupRequest
from clearing.settings import Settings
from ledger.errors import InvariantError, LedgerConflictError
from ledger.port import LedgerPort

RESERVE_ATTEMPTS_MAX = 3
GatewayOf = Callable[[], StripeGateway]  # made at first use: no Stripe key, no gateway


@dataclass(frozen=True, slots=True)
class BillCharge:
    """What the resident pays: a bill as looked up, and how."""

    biller_code: str
    account_no: str
    bill_id: str
    amount_fen: int
    request_id: str
    method_type: PaymentMethodType
    payment_method: str | None


async def start_topup(
    session: AsyncSession,
    ledger: LedgerPort | None,
    gateway: GatewayOf,
    resident_id: str,
    wanted: TopupRequest,
    settings: Settings,
) -> tuple[Topup, str | None]:
    """The top-up and, when Stripe was asked now, the client secret of its PaymentIntent (a
    wallet finishes with it). A declined card is recorded (committed) and PaymentDeclined
    raised. The same request id again returns the same top-up without charging."""
    topup, call_stripe = await _reserve(session, ledger, resident_id, wanted, settings)
    if not call_stripe:
        return topup, None
    topup_id = topup.topup_id
    metadata = service.intent_metadata(topup)
    await session.commit()  # stored before Stripe is asked: every webhook finds it
    try:
        intent = await gateway().create_intent(
            amount_fen=wanted.amount_fen,
            method_type=wanted.method_type.value,
            payment_method=wanted.payment_method,
            metadata=metadata,
            idempotency_key=rules.stripe_idempotency_key(topup_id),
        )
    except PaymentDeclined:
        await service.record_declined(session, topup_id, "the card was declined")
        await session.commit()
        raise
    topup = await service.record_intent(session, topup_id, intent)
    return topup, intent.client_secret


async def _reserve(
    session: AsyncSession,
    ledger: LedgerPort | None,
    resident_id: str,
    wanted: TopupRequest,
    settings: Settings,
) -> tuple[Topup, bool]:
    """Reserve the top-up; a ledger write conflict (another card's accounts opening at the same
    instant) is retried on a fresh transaction, a bounded number of times."""
    for attempt in range(RESERVE_ATTEMPTS_MAX):
        try:
            return await service.reserve_topup(session, ledger, resident_id, wanted, settings)
        except LedgerConflictError:
            await session.rollback()
            if attempt == RESERVE_ATTEMPTS_MAX - 1:
                raise
    raise InvariantError("unreachable: the loop returns or raises")


async def start_bill_payment(
    session: AsyncSession,
    gateway: GatewayOf,
    resident_id: str,
    charge: BillCharge,
    settings: Settings,
) -> tuple[BillPayment, Intent | None]:
    """The bill payment and, when Stripe was asked now, its PaymentIntent. The bill is checked
    with the biller before anything is charged; the same request id again pays nothing twice."""
    payment = await bills.start(
        session,
        resident_id,
        biller_code=charge.biller_code,
        account_no=charge.account_no,
        bill_id=charge.bill_id,
        amount_fen=charge.amount_fen,
        request_id=charge.request_id,
        settings=settings,
    )
    if payment.status is not PaymentStatus.STARTED:
        return payment, None
    metadata, key = bills.intent_metadata(payment), bills.idempotency_key(payment)
    await session.commit()  # started before Stripe is asked: the webhook always finds it
    intent = await gateway().create_intent(
        amount_fen=charge.amount_fen,
        method_type=charge.method_type.value,
        payment_method=charge.payment_method,
        metadata=metadata,
        idempotency_key=key,
    )
    return payment, intent
