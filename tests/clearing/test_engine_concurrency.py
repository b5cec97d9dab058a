"""Two clearing runs at once share the backlog (PostgreSQL's clearing lock): each says when it
waits for the other, its progress counts only what it cleared, and so does its summary."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from clearing.cli import clearing_cmd
from clearing.engine import repository as repo
from clearing.engine.service import (
    ClearingEngine,
    EngineConfig,
    RunListener,
    RunSummary,
    load_verifier,
)
from clearing.settings import get_settings
from ledger.writer import Ledger
from tests.clearing.test_engine import (
    ADULT,
    ADULT_2,
    SENIOR,
    STUDENT,
    World,
    engine_pg_url,
    world,
    world_url,
)

__all__ = ["engine_pg_url", "world", "world_url"]

pytestmark = pytest.mark.postgres


class Recorder(RunListener):
    def __init__(self) -> None:
        self.cleared_total = 0
        self.waited: list[tuple[int, ...]] = []
        self.backlogs: list[int] = []
        self.is_waiting = asyncio.Event()

    def cleared(self, records: int) -> None:
        self.cleared_total += records

    def waiting(self, other_runs: tuple[int, ...]) -> None:
        self.waited.append(other_runs)
        self.is_waiting.set()

    def backlog(self, records: int) -> None:
        self.backlogs.append(records)


@asynccontextmanager
async def clearing_lock_held(world: World) -> AsyncIterator[None]:
    """Hold the clearing lock (as a settlement or another run's chunk would) until exit."""
    async with world.ledger.transaction() as conn:
        await repo.take_clearing_lock(conn)
        yield


async def _stage(world: World, count: int) -> None:
    cards = (ADULT, ADULT_2, SENIOR, STUDENT)
    await world.upload([world.ride(cards[n % 4], 100) for n in range(count)])


async def test_two_runs_at_once_say_they_wait_and_count_only_their_own(
    world: World, tmp_path: Path
) -> None:
    if not world.url.startswith("postgresql"):
        pytest.skip("the clearing lock is PostgreSQL's (SQLite has one writer)")
    await _stage(world, 12)
    other_ledger = await Ledger.open(world.url)
    try:
        other = ClearingEngine(
            other_ledger, load_verifier(tmp_path / "keys.json"), EngineConfig(chunk_records=2)
        )
        world.engine.config = EngineConfig(chunk_records=2)
        first, second = Recorder(), Recorder()
        async with clearing_lock_held(world):
            run_b = asyncio.create_task(other.clear_pending(progress=second))
            await second.is_waiting.wait()
            run_a = asyncio.create_task(world.engine.clear_pending(progress=first))
            await first.is_waiting.wait()
        a, b = await run_a, await run_b
    finally:
        await other_ledger.close()
    assert first.waited[0] == (b.run_id,)  # A says it waits for run B
    assert b.run_id in a.waited_for and a.waits >= 1
    assert a.records_seen + b.records_seen == 12
    assert a.posted + b.posted == 12 and a.duplicates + b.duplicates == 0
    for summary, recorder in ((a, first), (b, second)):
        assert recorder.cleared_total == summary.records_seen  # its bar: its own records
        assert all(left <= 12 for left in recorder.backlogs)
    assert await world.states() == {"cleared": 12}


async def test_the_clear_command_says_whom_it_waits_for_and_counts_its_own(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    if not world.url.startswith("postgresql"):
        pytest.skip("the clearing lock is PostgreSQL's (SQLite has one writer)")
    await _stage(world, 6)
    monkeypatch.setenv("ONECARD_DATABASE_URL", world.url)
    monkeypatch.setenv("ONECARD_KEY_STORE", str(tmp_path / "keys.json"))
    get_settings.cache_clear()
    other_ledger = await Ledger.open(world.url)
    try:
        other = ClearingEngine(
            other_ledger, load_verifier(tmp_path / "keys.json"), EngineConfig(chunk_records=2)
        )
        recorder = Recorder()
        async with clearing_lock_held(world):
            run_b = asyncio.create_task(other.clear_pending(progress=recorder))
            await recorder.is_waiting.wait()
            run = asyncio.create_task(clearing_cmd.clear_with_progress(None, 2))
            while await _lock_waiters(world) < 2:
                await asyncio.sleep(0.05)
        summary: RunSummary = await run
        b = await run_b
    finally:
        get_settings.cache_clear()
        await other_ledger.close()
    clearing_cmd.print_summary(summary)
    said = " ".join(capsys.readouterr().out.split())
    assert f"waiting for clearing run {b.run_id}: the backlog is shared" in said
    assert f"waited for clearing run {b.run_id}: these counts are this run's own" in said
    assert summary.records_seen + b.records_seen == 6


async def _lock_waiters(world: World) -> int:
    """Sessions blocked on an advisory lock (the runs waiting for the clearing lock)."""
    async with world.ledger.engine.connect() as conn:
        found = await conn.execute(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        )
        return int(found.scalar() or 0)
