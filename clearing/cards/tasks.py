"""Celery task of the card workflow: move replaced cards' balances once their last taps cleared.

Thin and idempotent (a replacement moves once: its state and deterministic transfer ids), so
acknowledged late. Runs its coroutine with asyncio.run on a NullPool engine of its own loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from celery import shared_task
from sqlalchemy.ext.asyncio import async_sessionmaker

from clearing import db
from clearing.cards import service
from clearing.db.locks import sqlite_write_lock_at_begin
from clearing.settings import get_settings
from ledger.writer import Ledger


async def _complete_replacements() -> list[dict[str, Any]]:
    url = get_settings().resolved_database_url()
    engine = db.make_engine(url, pooled=False)
    if engine.dialect.name == "sqlite":
        sqlite_write_lock_at_begin(engine)
    try:
        async with await Ledger.open(url) as ledger:
            async with async_sessionmaker(engine, expire_on_commit=False)() as session:
                done = await service.complete_replacements(session, ledger)
                moved = [
                    {
                        "old_card_no": r.old_card_no,
                        "new_card_no": r.new_card_no,
                        "moved_fen": r.moved_fen,
                        "load_id": r.load_id,
                    }
                    for r in done
                ]
                await session.commit()
        return moved
    finally:
        await engine.dispose()


@shared_task(name="clearing.complete_replacements", acks_late=True, reject_on_worker_lost=True)
def complete_replacements() -> list[dict[str, Any]]:
    """Move every ready replacement's balance to its new card (as an action-list load)."""
    return asyncio.run(_complete_replacements())
