"""The nightly reconciliation as a Celery task (beat runs it after settlement). Thin and
idempotent: a re-run of a day finds the same breaks and keeps their status and history."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from celery import shared_task

from clearing import db
from clearing.db.base import utc_now
from clearing.settings import Settings, get_settings
from reconciliation.run import RunSummary, calendar_of, run_day, sweeps


async def reconcile(settings: Settings, business_day: date | None, *, trigger: str) -> RunSummary:
    """Run every check for a day (default: the last closed one) in one transaction; on the
    sweep's weekday the ledger check reads every account (`sweeps`)."""
    calendar = calendar_of(settings)
    day = business_day or calendar.last_closed_day(utc_now())
    engine = db.make_engine(settings.resolved_database_url(), pooled=False)
    try:
        async with engine.begin() as conn:
            return await run_day(
                conn, day, calendar=calendar, trigger=trigger, sweep_accounts=sweeps(settings, day)
            )
    finally:
        await engine.dispose()


@shared_task(name="reconciliation.reconcile_day", acks_late=True, reject_on_worker_lost=True)
def reconcile_task(business_day: str | None = None) -> dict[str, Any]:
    """Reconcile a business day (ISO date; default the last closed day). Idempotent."""
    day = date.fromisoformat(business_day) if business_day else None
    summary = asyncio.run(reconcile(get_settings(), day, trigger="beat"))
    return {
        "run_id": summary.run_id,
        "business_day": summary.business_day.isoformat(),
        "breaks_found": summary.found,
        "breaks_new": summary.new,
        "breaks_closed": summary.closed,
        "breaks_open": summary.open,
        "accounts_swept": summary.accounts_swept,
        "match_rates": {c.name: round(c.match_rate, 6) for c in summary.checks},
        "not_reached": {c.name: c.not_reached for c in summary.checks if c.not_reached},
    }
