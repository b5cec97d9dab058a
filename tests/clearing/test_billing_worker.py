"""Bill confirmations through a real Celery worker and a real broker (RabbitMQ), on
PostgreSQL: the biller is down for a few seconds, the task backs off and retries (countdowns on
the broker, not at once as in eager mode) until the biller acknowledges, once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from clearing.billing.models import BillConfirmation, ConfirmationState
from clearing.celery_app import make_celery
from clearing.settings import Settings
from tests.clearing.billerharness import BillerService, biller_service
from tests.clearing.test_billing_flow import WATER, bills, pay_online
from tests.clearing.test_celery import BROKER_URL, Worker, worker_env, world_url
from tests.clearing.test_engine import World, engine_pg_url, world

__all__ = ["biller_service", "bills", "engine_pg_url", "world", "worker_env", "world_url"]

pytestmark = [pytest.mark.celery, pytest.mark.postgres, pytest.mark.slow]

ACKNOWLEDGED_S_MAX = 90.0


@pytest.fixture
def bill_worker(
    worker_env: dict[str, str], biller_service: BillerService, tmp_path: Path
) -> Iterator[Worker]:
    env = {**worker_env, "ONECARD_BILLER_URL": biller_service.url}
    w = Worker(f"onecard-test-{uuid.uuid4().hex[:12]}", env, tmp_path / "worker.log")
    try:
        yield w
    finally:
        w.stop()


async def test_a_real_worker_backs_off_until_the_biller_acknowledges_once(
    bills: World, biller_service: BillerService, bill_worker: Worker
) -> None:
    bill = biller_service.add_bill(WATER, 5_555)
    receipt = await pay_online(bills, bill, "resident-0", "pi_worker")
    bill_worker.start()
    before = biller_service.stats()
    biller_service.outage(requests=2)  # two refusals: retried after 2 s, then 4 s (countdowns)
    client = make_celery(Settings(celery_broker_url=BROKER_URL))
    client.send_task(
        "clearing.confirm_bill_payment", args=[receipt.payment_id], queue=bill_worker.queue
    )
    deadline = time.monotonic() + ACKNOWLEDGED_S_MAX
    while True:
        async with bills.ledger.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(BillConfirmation.state, BillConfirmation.attempts).where(
                        BillConfirmation.payment_id == receipt.payment_id
                    )
                )
            ).one()
        if row.state == ConfirmationState.ACKNOWLEDGED:
            break
        assert time.monotonic() < deadline, (
            f"not acknowledged: {bill_worker.log.read_text()[-3000:]}"
        )
        time.sleep(0.2)
    assert row.attempts == 3  # refused twice while down, then acknowledged
    after = biller_service.stats()
    assert after["accepted"] - before["accepted"] == 1
    assert after["refused_503"] - before["refused_503"] == 2
    assert "Retry in 2s" in bill_worker.log.read_text()  # the backoff went through the broker
