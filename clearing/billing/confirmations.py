"""Telling a biller its bill is paid: one attempt at a time, the acknowledgement recorded once.

The outbox row (bill_confirmations) is written with the payment; the Celery task
(clearing/billing/tasks.py) calls `confirm_once` until the biller acknowledges, and a beat sweep
re-queues what was never dispatched or is still unacknowledged. The biller is idempotent by our
payment id; on our side the row lock and the state make a second acknowledgement change
nothing. Never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from clearing.billing import repository
from clearing.billing.adapter import AdapterSource, Confirmation, adapters_from
from clearing.billing.models import ConfirmationState
from clearing.billing.rules import BillerProtocolError, BillerUnavailable
from clearing.db.base import utc_now
from clearing.errors import NotFound
from clearing.settings import get_settings

# A dispatched confirmation still unacknowledged after this is queued again by the sweep.
REDISPATCH_AFTER = timedelta(minutes=15)
DISPATCH_BATCH_MAX = 500
LAST_ERROR_LENGTH_MAX = 500


@dataclass(frozen=True, slots=True)
class ConfirmOutcome:
    """acknowledged: the biller holds it (now or before); retry: worth asking again later."""

    payment_id: str
    acknowledged: bool
    retry: bool
    attempts: int
    biller_ack: str | None
    error: str | None


async def confirm_once(
    session: AsyncSession, payment_id: str, *, adapters: AdapterSource | None = None
) -> ConfirmOutcome:
    """Ask the biller once (unless already acknowledged). An unavailable biller is worth a retry;
    a refusal (protocol error, another payment paid the bill) is left for staff to see."""
    confirmation = await repository.confirmation_for_update(session, payment_id)
    if confirmation is None:
        raise NotFound(f"no confirmation is due for bill payment {payment_id}")
    if confirmation.state is ConfirmationState.ACKNOWLEDGED:
        return ConfirmOutcome(
            payment_id, True, False, confirmation.attempts, confirmation.biller_ack, None
        )
    payment = await repository.payment(session, payment_id)
    if payment is None or payment.paid_at is None:  # the outbox row is written with the payment
        raise NotFound(f"bill payment {payment_id} is not paid")
    source = adapters or adapters_from(get_settings())
    confirmation.attempts += 1
    retry = False
    try:
        ack = await source(payment.biller_code).confirm(
            Confirmation(
                payment_id=payment.id,
                account_no=payment.account_no,
                bill_id=payment.bill_id,
                amount_fen=payment.amount_fen,
                paid_at=payment.paid_at,
                channel=payment.channel.value,
            )
        )
    except (BillerUnavailable, BillerProtocolError) as error:
        retry = isinstance(error, BillerUnavailable)
        confirmation.last_error = error.detail[:LAST_ERROR_LENGTH_MAX]
        await session.flush()
        return ConfirmOutcome(
            payment_id, False, retry, confirmation.attempts, None, confirmation.last_error
        )
    confirmation.state = ConfirmationState.ACKNOWLEDGED
    confirmation.biller_ack = ack
    confirmation.acknowledged_at = utc_now()
    confirmation.last_error = None
    await session.flush()
    return ConfirmOutcome(payment_id, True, False, confirmation.attempts, ack, None)


async def take_for_dispatch(
    session: AsyncSession, payment_ids: list[str] | None = None, *, now: datetime | None = None
) -> list[str]:
    """Mark as dispatched and return the confirmations to queue: `payment_ids` if given (right
    after their commit), else every unacknowledged one never dispatched or stale (the sweep)."""
    now = now or utc_now()
    if payment_ids is None:
        payment_ids = await repository.confirmations_to_dispatch(
            session, now - REDISPATCH_AFTER, DISPATCH_BATCH_MAX
        )
    taken = []
    for payment_id in payment_ids[:DISPATCH_BATCH_MAX]:
        row = await repository.confirmation_for_update(session, payment_id)
        if row is not None and row.state is ConfirmationState.PENDING:
            row.dispatched_at = now
            taken.append(payment_id)
    await session.flush()
    return taken
