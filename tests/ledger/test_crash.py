"""A process killed with SIGKILL in the middle of a large linked batch leaves all of it or none."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from ledger.check import check_ledger
from ledger.ids import transfer_id
from ledger.types import CreateTransferResult, Transfer, TransferFlags
from ledger.writer import Ledger
from tests.ledger.helpers import CNY, setup_books

pytestmark = pytest.mark.postgres
BATCH = 8_000

_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from ledger.ids import account_id, transfer_id
    from ledger.types import Transfer, TransferFlags
    from ledger.writer import Ledger

    url, ns, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    n = int(sys.argv[4])

    async def main():
        led = await Ledger.open(url)
        bank, merchant = account_id(f"{ns}:bank"), account_id(f"{ns}:merchant")
        batch = [
            Transfer(transfer_id(f"{ns}:b{k}"), bank, merchant, 1, 1, 1,
                     flags=TransferFlags.LINKED if k < n - 1 else TransferFlags.NONE)
            for k in range(n)
        ]
        if mode == "uncommitted":
            async with led.transaction() as conn:
                await led.create_transfers(batch, conn=conn)
                print("written", flush=True)
                await asyncio.Event().wait()  # killed here, before the commit
        print("posting", flush=True)
        await led.create_transfers(batch)
        print("committed", flush=True)

    asyncio.run(main())
    """
)


def _batch(ns: str) -> list[Transfer]:
    return [
        Transfer(
            transfer_id(f"{ns}:b{k}"),
            0,
            0,
            1,
            CNY,
            1,
            flags=TransferFlags.LINKED if k < BATCH - 1 else TransferFlags.NONE,
        )
        for k in range(BATCH)
    ]


async def _count_posted(url: str, ns: str) -> int:
    async with await Ledger.open(url) as led:
        ids = [t.id for t in _batch(ns)]
        return len(await led.reader.lookup_transfers(ids))


async def _assert_consistent(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            report = await check_ledger(conn)
        assert report.ok, report.problems
    finally:
        await engine.dispose()


async def _wait_for_ledger_write(url: str, child: subprocess.Popen) -> None:
    """Wait until the child is writing the batch's rows (COPY) or balances, or has finished."""
    parsed = make_url(url)
    conn = await asyncpg.connect(
        user=parsed.username or "postgres",
        host=parsed.host,
        port=parsed.port or 5432,
        database=parsed.database,
    )
    try:
        while child.poll() is None:
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state = 'active'"
                " AND (query ILIKE 'COPY%ledger_transfers%' OR query ILIKE '%UPDATE ledger_accounts%')"
            )
            if busy:
                return
            await asyncio.sleep(0)
    finally:
        await conn.close()


def _spawn(url: str, ns: str, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, url, ns, mode, str(BATCH)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )


async def test_sigkill_before_commit_leaves_none_of_the_batch(fresh_pg_url, ns):
    async with await Ledger.open(fresh_pg_url) as led:
        await setup_books(led, ns)
    child = _spawn(fresh_pg_url, ns, "uncommitted")
    try:
        line = await asyncio.to_thread(child.stdout.readline)
        assert line.strip() == "written"
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
    assert await _count_posted(fresh_pg_url, ns) == 0
    await _assert_consistent(fresh_pg_url)


async def test_sigkill_while_posting_leaves_all_or_none_and_a_retry_completes(fresh_pg_url, ns):
    async with await Ledger.open(fresh_pg_url) as led:
        books = await setup_books(led, ns)
    child = _spawn(fresh_pg_url, ns, "commit")
    try:
        assert (await asyncio.to_thread(child.stdout.readline)).strip() == "posting"
        await _wait_for_ledger_write(fresh_pg_url, child)
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
    posted = await _count_posted(fresh_pg_url, ns)
    print(f"posted after SIGKILL: {posted} of {BATCH}")
    assert posted in (0, BATCH)
    await _assert_consistent(fresh_pg_url)
    # The client retries the same batch: it completes exactly once.
    batch = [
        Transfer(t.id, books["bank"].id, books["merchant"].id, 1, CNY, 1, flags=t.flags)
        for t in _batch(ns)
    ]
    async with await Ledger.open(fresh_pg_url) as led:
        results = await led.create_transfers(batch)
        expected = CreateTransferResult.EXISTS if posted else CreateTransferResult.OK
        assert results == [expected] * BATCH
        [merchant] = await led.reader.lookup_accounts([books["merchant"].id])
        assert merchant.balance.credits_posted == BATCH
    await _assert_consistent(fresh_pg_url)
