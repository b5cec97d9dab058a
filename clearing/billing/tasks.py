"""Celery tasks of the bill workflow: confirm a paid bill to its biller until it acknowledges,
and the sweep that queues confirmations never dispatched (a crash between commit and dispatch)
or still unacknowledged.

Thin and idempotent (the biller is idempotent by our payment id, our row records one
acknowledgement), so acknowledged late. Retries back off exponentially, bounded
(rules.backoff_s, rules.CONFIRM_RETRIES_MAX); past the bound the sweep takes over. Eager in the
embedded default (retries then run at once). Coroutines run with asyncio.run on a NullPool
engine of their own loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, TypeVar

from celery import shared_task
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clearing import db
from clearing.billing import confirmations
from clearing.billing.confirmations import ConfirmOutcome
from clearing.billing.rules import CONFIRM_RETRIES_MAX, backoff_s
from clearing.db.locks import sqlite_write_lock_at_begin
from clearing.settings import get_settings

T = TypeVar("T")


async def _in_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    engine = db.make_engine(get_settings().resolved_database_url(), pooled=False)
    if engine.dialect.name == "sqlite":
        sqlite_write_lock_at_begin(engine)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


def _confirm(payment_id: str) -> ConfirmOutcome:
    return asyncio.run(_in_session(lambda s: confirmations.confirm_once(s, payment_id)))


@shared_task(
    name="clearing.confirm_bill_payment",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=CONFIRM_RETRIES_MAX,
)
def confirm_bill_payment(self: Any, payment_id: str) -> dict[str, Any]:
    """Tell the biller payment `payment_id` is paid; retry with backoff while it is down."""
    outcome = _confirm(payment_id)
    if self.request.is_eager:
        # Eager (no worker): Celery would hand a Retry to the caller; retry here at once, as
        # eager retries do, within the same bound.
        for _ in range(CONFIRM_RETRIES_MAX):
            if not outcome.retry:
                break
            outcome = _confirm(payment_id)
    elif outcome.retry and self.request.retries < CONFIRM_RETRIES_MAX:
        raise self.retry(countdown=backoff_s(self.request.retries))
    return asdict(outcome)


def queue(payment_ids: list[str]) -> None:
    """Queue one confirmation task per payment (eager: runs them now, in this thread)."""
    for payment_id in payment_ids:
        confirm_bill_payment.delay(payment_id)


def dispatch_confirmations(payment_ids: list[str] | None = None) -> list[str]:
    """After the commit that paid them (or, with None, the sweep): mark and queue. Sync: from
    async code call it through asyncio.to_thread (an eager task runs its own event loop)."""
    taken = asyncio.run(_in_session(lambda s: confirmations.take_for_dispatch(s, payment_ids)))
    queue(taken)
    return taken


async def dispatch_after_commit(
    sessionmaker: async_sessionmaker[AsyncSession], payment_ids: list[str]
) -> list[str]:
    """For an endpoint's background task (after its commit): mark on the app's database, then
    queue from a worker thread."""
    async with sessionmaker() as session:
        taken = await confirmations.take_for_dispatch(session, payment_ids)
        await session.commit()
    await asyncio.to_thread(queue, taken)
    return taken


@shared_task(name="clearing.dispatch_bill_confirmations", acks_late=True)
def dispatch_bill_confirmations() -> list[str]:
    """Beat: queue every confirmation never dispatched, or dispatched long ago and still due."""
    return dispatch_confirmations(None)
