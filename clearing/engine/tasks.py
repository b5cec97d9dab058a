"""Celery tasks of the clearing engine: thin, idempotent, acknowledged late."""

from __future__ import annotations

import asyncio
from typing import Any

from celery import shared_task

from clearing.engine.service import EngineConfig, open_engine
from clearing.engine.shards import ALL_SHARDS, ShardRange, split
from clearing.settings import get_settings


async def _clear(
    trigger: str,
    records_max: int | None,
    chunk_records: int | None,
    shards: ShardRange = ALL_SHARDS,
) -> dict[str, Any]:
    settings = get_settings()
    config = EngineConfig(chunk_records=chunk_records) if chunk_records else None
    async with open_engine(settings.resolved_database_url(), settings.key_store, config) as engine:
        summary = await engine.clear_pending(
            trigger=trigger, records_max=records_max, shards=shards
        )
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
        "shards": list(shards),
    }


@shared_task(name="clearing.clear_staged", acks_late=True, reject_on_worker_lost=True)
def clear_staged(
    trigger: str = "celery", records_max: int | None = None, chunk_records: int | None = None
) -> dict[str, Any]:
    """Clear every staged tap record. Safe to run twice or to kill: chunks are atomic."""
    return asyncio.run(_clear(trigger, records_max, chunk_records))


@shared_task(name="clearing.clear_shards", acks_late=True, reject_on_worker_lost=True)
def clear_shards(
    low: int, high: int, trigger: str = "celery", chunk_records: int | None = None
) -> dict[str, Any]:
    """Clear the staged records of the cards of shards [low, high) (clearing/engine/shards.py):
    one part of a backlog split across workers. Safe to run twice, beside the others, or to
    kill: a card's records are cleared by one run at a time, chunks are atomic."""
    return asyncio.run(_clear(trigger, None, chunk_records, (low, high)))


def clear_split(workers: int, trigger: str = "celery-split") -> Any:
    """Send the backlog to `workers` Celery workers, one contiguous range of card shards each
    (a Celery group; its `.get()` gives each part's counters)."""
    from celery import group

    return group(clear_shards.s(low, high, trigger) for low, high in split(workers)).apply_async()
