"""Celery tasks of the clearing engine: thin, idempotent, acknowledged late."""

from __future__ import annotations

import asyncio
from typing import Any

from celery import shared_task

from clearing.engine.service import EngineConfig, open_engine
from clearing.settings import get_settings


async def _clear(
    trigger: str, records_max: int | None, chunk_records: int | None
) -> dict[str, Any]:
    settings = get_settings()
    config = EngineConfig(chunk_records=chunk_records) if chunk_records else None
    async with open_engine(settings.resolved_database_url(), settings.key_store, config) as engine:
        summary = await engine.clear_pending(trigger=trigger, records_max=records_max)
    return {
        "run_id": summary.run_id,
        "records_seen": summary.records_seen,
        "posted": summary.posted,
        "duplicates": summary.duplicates,
        "voided": summary.voided,
        "quarantined": summary.quarantined,
        "resolved": summary.resolved,
        "amount_fen_posted": summary.amount_fen_posted,
        "waited_for": sorted(summary.waited_for),  # other runs that shared the backlog
    }


@shared_task(name="clearing.clear_staged", acks_late=True, reject_on_worker_lost=True)
def clear_staged(
    trigger: str = "celery", records_max: int | None = None, chunk_records: int | None = None
) -> dict[str, Any]:
    """Clear every staged tap record. Safe to run twice or to kill: chunks are atomic."""
    return asyncio.run(_clear(trigger, records_max, chunk_records))
