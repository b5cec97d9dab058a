"""Clearing through a real Celery worker and a real broker (RabbitMQ), on PostgreSQL: the same
batch twice, batches out of order, forged records, and the worker killed with SIGKILL in the
middle of clearing, then started again. Afterwards every valid record is posted exactly once
and every invalid one is in quarantine with the right reason.

The worker is a subprocess (`celery -A clearing.celery_app worker --pool=solo`) on a queue of
its own, so other workers on the same broker never take these tasks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from clearing import books
from clearing.books import TransferCode
from clearing.celery_app import make_celery
from clearing.engine.models import ClearedTap, ClearingRun, TapDisposition
from clearing.engine.shards import split
from clearing.engine.synthetic import forged
from clearing.ingest.models import TapRecord
from clearing.settings import Settings
from ledger.tables import transfers as ledger_transfers
from tests.clearing.test_engine import (
    ADULT,
    ADULT_2,
    SENIOR,
    STUDENT,
    World,
    engine_pg_url,
    world,
)

__all__ = ["engine_pg_url", "world"]

pytestmark = [pytest.mark.celery, pytest.mark.postgres, pytest.mark.slow]

BROKER_URL = os.environ.get("ONECARD_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
WORKER_READY_S_MAX = 60.0
CLEARING_S_MAX = 120.0


class Worker:
    """A `celery worker` subprocess on its own queue; stop() or kill() it."""

    def __init__(self, queue: str, env: dict[str, str], log: Path) -> None:
        self.queue = queue
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.write_bytes(b"")
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "clearing.celery_app",
                "worker",
                "--pool=solo",
                "--loglevel=INFO",
                "-Q",
                self.queue,
                "-n",
                f"{self.queue}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        handle.close()
        deadline = time.monotonic() + WORKER_READY_S_MAX
        while b" ready." not in self.log.read_bytes():
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


@pytest.fixture
def world_url(engine_pg_url: str) -> str:
    """The worker test runs on PostgreSQL only (the engine tests' own database)."""
    return engine_pg_url


@pytest.fixture
def worker_env(world_url: str, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ONECARD_DATABASE_URL=world_url,
        ONECARD_CELERY_BROKER_URL=BROKER_URL,
        ONECARD_KEY_STORE=str(tmp_path / "keys.json"),
        ONECARD_DATA_DIR=str(tmp_path / "var"),
    )
    return env


@pytest.fixture
def worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Worker]:
    queue = f"onecard-test-{uuid.uuid4().hex[:12]}"
    w = Worker(queue, worker_env, tmp_path / "worker.log")
    try:
        yield w
    finally:
        w.stop()


async def _count(world: World, statement) -> int:  # type: ignore[no-untyped-def]
    async with world.ledger.engine.connect() as conn:
        return int((await conn.execute(statement)).scalar() or 0)


async def _wait_for(world: World, statement, predicate, seconds: float) -> int:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        value = await _count(world, statement)
        if predicate(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last value {value}")
        time.sleep(0.005)


async def test_worker_killed_mid_clearing_posts_everything_exactly_once(
    world: World, worker: Worker
) -> None:
    cards = (ADULT, ADULT_2, SENIOR, STUDENT)
    rides = [world.ride(cards[n % 4], 2, full_fare_fen=4) for n in range(3000)]
    batches = [rides[start : start + 500] for start in range(0, len(rides), 500)]
    forgeries = [forged(ride) for ride in rides[:5]]
    for number, batch in reversed(list(enumerate(batches))):  # out of order
        await world.upload(batch, batch_id=f"batch-{number}")
    await world.upload(batches[2], batch_id="batch-2")  # the same batch twice: stored once
    await world.upload(batches[1], batch_id="batch-1-again")  # the same records, another batch
    await world.upload(forgeries, batch_id="forged")
    staged = await _count(world, select(func.count()).select_from(TapRecord))
    assert staged == 3000 + 500 + 5

    client = make_celery(Settings(celery_broker_url=BROKER_URL))
    worker.start()
    client.send_task("clearing.clear_staged", kwargs={"chunk_records": 40}, queue=worker.queue)
    not_received = select(func.count()).select_from(TapRecord).where(TapRecord.state != "received")
    await _wait_for(world, not_received, lambda n: n >= 400, CLEARING_S_MAX)
    worker.kill()
    left = await _count(
        world, select(func.count()).select_from(TapRecord).where(TapRecord.state == "received")
    )
    assert left > 0, "the worker finished before it could be killed: make the work bigger"

    worker.start()  # the broker hands the unacknowledged task to the new worker
    await _wait_for(
        world,
        select(func.count()).select_from(TapRecord).where(TapRecord.state == "received"),
        lambda n: n == 0,
        CLEARING_S_MAX,
    )
    await _wait_for(
        world,
        select(func.count()).select_from(ClearingRun).where(ClearingRun.state == "finished"),
        lambda n: n >= 1,
        CLEARING_S_MAX,
    )

    assert await _count(world, select(func.count()).select_from(ClearedTap)) == 3000
    purchases = (
        select(func.count())
        .select_from(ledger_transfers)
        .where(ledger_transfers.c.code == int(TransferCode.TAP_PURCHASE))
    )
    assert await _count(world, purchases) == 3000
    assert await _count(world, select(func.count()).select_from(TapDisposition)) == 500
    quarantined = select(TapRecord.quarantine_reason).where(TapRecord.state == "quarantined")
    async with world.ledger.engine.connect() as conn:
        reasons = (await conn.execute(quarantined)).scalars().all()
    assert reasons == ["bad_tac"] * 5
    for card_no in cards:
        assert await world.balance(books.card(card_no)) == 10_000 - 2 * 750
    # 3,000 fares of 2 fen, plus 2 fen of subsidy on each of the 1,500 concession rides
    assert await world.balance(books.payable("bus-1")) == 3000 * 2 + 1500 * 2
    assert await world.balance(books.subsidy("senior")) == 750 * 2


async def test_two_workers_clear_a_backlog_split_by_card_shards(
    world: World, worker_env: dict[str, str], tmp_path: Path
) -> None:
    """`clear_split(2)`'s tasks, each on a worker of its own: every record cleared once, each
    worker only its cards' records."""
    cards = (ADULT, ADULT_2, SENIOR, STUDENT)
    await world.upload([world.ride(cards[n % 4], 2) for n in range(400)])
    workers = [
        Worker(f"onecard-test-{uuid.uuid4().hex[:12]}", worker_env, tmp_path / f"w{n}.log")
        for n in range(2)
    ]
    try:
        for w in workers:
            w.start()
        client = make_celery(Settings(celery_broker_url=BROKER_URL))
        for w, (low, high) in zip(workers, split(2), strict=True):
            client.send_task(
                "clearing.clear_shards", args=(low, high), kwargs={"chunk_records": 30},
                queue=w.queue,
            )  # fmt: skip
        await _wait_for(
            world,
            select(func.count()).select_from(ClearingRun).where(ClearingRun.state == "finished"),
            lambda n: n >= 2,
            CLEARING_S_MAX,
        )
    finally:
        for w in workers:
            w.stop()
    assert await _count(world, select(func.count()).select_from(ClearedTap)) == 400
    async with world.ledger.engine.connect() as conn:
        seen = (await conn.execute(select(ClearingRun.records_seen))).scalars().all()
    assert sorted(seen) == [200, 200]  # two cards' records each (shards 5, 0 | 24, 31)
    for card_no in cards:
        assert await world.balance(books.card(card_no)) == 10_000 - 2 * 100
