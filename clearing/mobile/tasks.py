"""Celery task of the mobile channel: refund top-ups whose load was not delivered in time.

Thin and idempotent: the Stripe refund carries an idempotency key of the top-up, the refund
transfer an id of its PaymentIntent, so a re-run refunds and books nothing twice. Runs its
coroutine with asyncio.run on a NullPool engine of its own loop.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from celery import shared_task
from sqlalchemy.ext.asyncio import async_sessionmaker

from clearing import db
from clearing.db.base import utc_now
from clearing.db.locks import sqlite_write_lock_at_begin
from clearing.mobile import service
from clearing.mobile.gateway import StripeGateway
from clearing.settings import Settings, get_settings
from ledger.writer import Ledger

EXPIRIES_PER_RUN_MAX = 500


async def expire_topups(settings: Settings, now: datetime | None = None) -> list[dict[str, Any]]:
    """Refund every paid top-up whose load is past its expiry (at `now`); one transaction each."""
    now = now or utc_now()
    url = settings.resolved_database_url()
    engine = db.make_engine(url, pooled=False)
    if engine.dialect.name == "sqlite":
        sqlite_write_lock_at_begin(engine)
    gateway = StripeGateway(settings)
    done: list[dict[str, Any]] = []
    try:
        async with await Ledger.open(url) as ledger:
            sessions = async_sessionmaker(engine, expire_on_commit=False)
            async with sessions() as session:
                due = await service.stripe_topups_to_expire(session, now, EXPIRIES_PER_RUN_MAX)
            for topup_id in due:
                async with sessions() as session:
                    topup = await service.expire_one(session, ledger, gateway, topup_id, now)
                    await session.commit()
                if topup is not None:
                    done.append({"topup_id": topup_id, "amount_fen": topup.amount_fen})
    finally:
        await engine.dispose()
    return done


@shared_task(name="clearing.expire_topups", acks_late=True, reject_on_worker_lost=True)
def expire_topups_task() -> list[dict[str, Any]]:
    """Refund through Stripe every top-up not delivered within its expiry (30 days)."""
    return asyncio.run(expire_topups(get_settings()))
