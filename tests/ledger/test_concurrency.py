"""PostgreSQL under contention: 32 concurrent clients on 5 accounts, no lost update, no
overdraft, no deadlock; concurrent replays of one id post it once."""

from __future__ import annotations

import asyncio
import random

import pytest

from ledger.types import AccountFlags, CreateTransferResult, TransferFlags
from ledger.writer import Ledger
from tests.ledger.helpers import balances, setup_books, xfer

R = CreateTransferResult
CLIENTS = 32
CALLS_PER_CLIENT = 25

pytestmark = pytest.mark.postgres


async def test_32_clients_on_5_accounts_match_the_model_without_deadlock(pg_url, ns):
    async with await Ledger.open(pg_url, group_commit=False, pool_size=CLIENTS) as led:
        books = await setup_books(led, ns)
        accounts = [books[n] for n in ("bank", "card", "card2", "merchant", "limit")]
        funding = [
            xfer(ns, "fund-card", books["bank"], books["card"], 2_000),
            xfer(ns, "fund-card2", books["bank"], books["card2"], 2_000),
            xfer(ns, "fund-limit", books["limit"], books["bank"], 2_000),
        ]
        assert await led.create_transfers(funding) == [R.OK] * 3
        posted: list = list(funding)

        async def client(k: int) -> None:
            rng = random.Random(k)
            for n in range(CALLS_PER_CLIENT):
                a, b = rng.sample(accounts, 2)
                amount = rng.randint(1, 400)
                if rng.random() < 0.3:
                    # opposing transfers in one linked batch: a->b then b->a
                    batch = [
                        xfer(ns, f"{k}:{n}:x", a, b, amount, flags=TransferFlags.LINKED),
                        xfer(ns, f"{k}:{n}:y", b, a, rng.randint(1, 400)),
                    ]
                else:
                    batch = [xfer(ns, f"{k}:{n}", a, b, amount)]
                results = await led.create_transfers(batch)
                for t, r in zip(batch, results, strict=True):
                    assert r in (
                        R.OK,
                        R.EXCEEDS_CREDITS,
                        R.EXCEEDS_DEBITS,
                        R.LINKED_EVENT_FAILED,
                    ), r
                    if r is R.OK:
                        posted.append(t)

        await asyncio.gather(*(client(k) for k in range(CLIENTS)))
        assert led.retries["deadlock"] == 0, led.retries

        expected = {a.id: [0, 0, 0, 0] for a in accounts}
        for t in posted:
            expected[t.debit_account_id][1] += t.amount
            expected[t.credit_account_id][3] += t.amount
        for a in accounts:
            assert list(await balances(led, a)) == expected[a.id], a.name
            dp, dpo, cp, cpo = await balances(led, a)
            if a.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS:
                assert dpo <= cpo
            if a.flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS:
                assert cpo <= dpo
        assert len(posted) > CLIENTS  # the contention really moved money

        # Every entry's balances chain correctly under contention, too.
        for a in accounts:
            page = await led.reader.get_account_history(a.id, limit=8190)
            for previous, entry in zip(page.entries, page.entries[1:], strict=False):
                assert entry.balance_before == previous.balance_after
            assert (
                list(
                    (
                        page.entries[-1].balance_after.debits_pending,
                        page.entries[-1].balance_after.debits_posted,
                        page.entries[-1].balance_after.credits_pending,
                        page.entries[-1].balance_after.credits_posted,
                    )
                )
                == expected[a.id]
            )


async def test_concurrent_submissions_of_one_id_post_once(pg_url, ns):
    async with await Ledger.open(pg_url, group_commit=False, pool_size=16) as led:
        books = await setup_books(led, ns)
        t = xfer(ns, "once", books["bank"], books["merchant"], 7)
        results = await asyncio.gather(*(led.create_transfers([t]) for _ in range(16)))
        flat = [r for [r] in results]
        assert flat.count(R.OK) == 1 and flat.count(R.EXISTS) == 15
        assert await balances(led, books["merchant"]) == (0, 0, 0, 7)


async def test_one_id_raced_on_disjoint_accounts_is_retried_into_one_post(pg_url, ns):
    """Two transactions lock different accounts, so only the primary key decides the race: the
    loser blocks on the winner's uncommitted row, fails with a unique violation once the winner
    commits, is retried by the ledger and then reports the conflict precisely."""
    from sqlalchemy import text

    from ledger.ids import transfer_id
    from ledger.types import Transfer

    async with await Ledger.open(pg_url, group_commit=False, pool_size=4) as led:
        books = await setup_books(led, ns)
        tid = transfer_id(f"{ns}:raced")
        winner = Transfer(tid, books["bank"].id, books["merchant"].id, 3, 1, 1)
        loser = Transfer(tid, books["limit"].id, books["card"].id, 3, 1, 1)
        async with led.transaction() as conn:
            assert await led.create_transfers([winner], conn=conn) == [R.OK]
            racing = asyncio.create_task(led.create_transfers([loser]))
            async with led.engine.connect() as watcher:

                async def blocked() -> None:
                    while not (
                        await watcher.execute(
                            text(
                                "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                                " current_database() AND wait_event_type = 'Lock'"
                            )
                        )
                    ).scalar():
                        await watcher.rollback()
                        await asyncio.sleep(0)

                await asyncio.wait_for(blocked(), timeout=30)
        assert await racing == [R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID]
        assert led.retries["unique_violation"] >= 1
        assert await balances(led, books["merchant"]) == (0, 0, 0, 3)
        assert await balances(led, books["card"]) == (0, 0, 0, 0)


@pytest.mark.parametrize("stop", ["pg_cancel_backend", "pg_terminate_backend"])
async def test_a_group_stopped_mid_batch_fails_alone_and_the_next_posts(pg_url, ns, stop):
    """A group commit's statement cancelled (or its connection killed) while it waits for an
    account lock: its callers get the error, nothing of it is posted, no connection goes back
    to the pool inside a transaction, and the next call posts."""
    import asyncpg
    from sqlalchemy import text

    from ledger.ids import account_id

    async with await Ledger.open(pg_url, pool_size=2) as led:
        books = await setup_books(led, ns)
        first = xfer(ns, "stopped", books["bank"], books["merchant"], 5)
        dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://")
        blocker = await asyncpg.connect(dsn)
        watcher = await asyncpg.connect(dsn)
        try:
            async with blocker.transaction():
                await blocker.execute(
                    "SELECT 1 FROM ledger_accounts WHERE id = $1::uuid FOR UPDATE",
                    f"{account_id(f'{ns}:bank'):032x}",
                )
                stopped = asyncio.create_task(led.create_transfers([first]))

                async def waiting_pid() -> int:
                    # From a connection outside any transaction: pg_stat_activity is read
                    # once per transaction.
                    while True:
                        pid = await watcher.fetchval(
                            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                            " AND wait_event_type = 'Lock' AND query LIKE '%ledger_load_batch%'"
                        )
                        if pid is not None:
                            return int(pid)
                        await asyncio.sleep(0.01)

                pid = await asyncio.wait_for(waiting_pid(), timeout=30)
                assert await watcher.fetchval(f"SELECT {stop}($1)", pid)
                with pytest.raises(Exception) as failed:
                    await stopped
                assert (
                    "cancel" in str(failed.value).lower()
                    or "terminat" in str(failed.value).lower()
                    or "closed" in str(failed.value).lower()
                ), failed.value
        finally:
            await blocker.close()
            await watcher.close()
        async with led.engine.connect() as conn:
            stuck = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                        " current_database() AND state LIKE 'idle in transaction%'"
                        " AND pid <> pg_backend_pid()"
                    )
                )
            ).scalar()
        assert stuck == 0
        assert await balances(led, books["merchant"]) == (0, 0, 0, 0)
        second = xfer(ns, "next", books["bank"], books["merchant"], 7)
        for _ in range(3):  # every pooled connection, the replaced one too, still works
            assert await led.create_transfers([second]) in ([R.OK], [R.EXISTS])
        assert await led.create_transfers([first]) == [R.OK]
        assert await balances(led, books["merchant"]) == (0, 0, 0, 12)
