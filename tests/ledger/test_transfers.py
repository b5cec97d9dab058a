"""Behaviour of create_transfers on both backends: results, idempotency, chains, two-phase."""

from __future__ import annotations

import asyncio

import pytest

from ledger.errors import BatchMalformedError, BatchTooLargeError
from ledger.ids import expiry_id
from ledger.types import BATCH_MAX, AccountFlags, CreateTransferResult, Transfer, TransferFlags
from ledger.writer import Ledger
from tests.ledger.helpers import CNY, USD, acct, balances, setup_books, xfer

R = CreateTransferResult
POST = TransferFlags.POST_PENDING_TRANSFER
VOID = TransferFlags.VOID_PENDING_TRANSFER
LINKED = TransferFlags.LINKED
PENDING = TransferFlags.PENDING


class FakeClock:
    """Wall clock that a test can move forward instead of sleeping."""

    def __init__(self) -> None:
        import time

        self._time = time
        self.offset_ns = 0

    def __call__(self) -> int:
        return self._time.time_ns() + self.offset_ns

    async def jump_past(self, led: Ledger, pending: Transfer) -> None:
        """Move the wall clock just past the pending transfer's deadline."""
        [stored] = await led.reader.lookup_transfers([pending.id])
        deadline = stored.timestamp + stored.timeout_s * 10**9
        self.offset_ns = max(self.offset_ns, deadline - self._time.time_ns() + 10**6)


async def test_plain_transfer_moves_money_and_replay_reports_exists(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        load = xfer(ns, "load", b["bank"], b["card"], 1_000)
        assert await led.create_transfers([load]) == [R.OK]
        assert await led.create_transfers([load]) == [R.EXISTS]
        assert await balances(led, b["card"]) == (0, 0, 0, 1_000)
        assert await balances(led, b["bank"]) == (0, 1_000, 0, 0)
        [stored] = await led.reader.lookup_transfers([load.id])
        assert stored.timestamp > 0 and stored.amount == 1_000


@pytest.mark.parametrize(
    ("change", "result"),
    [
        ({"amount": 999}, R.EXISTS_WITH_DIFFERENT_AMOUNT),
        ({"code": 7}, R.EXISTS_WITH_DIFFERENT_CODE),
        ({"user_data_64": 5}, R.EXISTS_WITH_DIFFERENT_USER_DATA_64),
        ({"user_data_32": 5}, R.EXISTS_WITH_DIFFERENT_USER_DATA_32),
        ({"user_data_128": 5}, R.EXISTS_WITH_DIFFERENT_USER_DATA_128),
        ({"effective_at": 5}, R.EXISTS_WITH_DIFFERENT_EFFECTIVE_AT),
        ({"flags": PENDING}, R.EXISTS_WITH_DIFFERENT_FLAGS),
    ],
)
async def test_same_id_with_different_fields_is_refused_naming_the_field(
    sqlite_url, ns, change, result
):
    from dataclasses import replace

    async with await Ledger.open(sqlite_url) as led:
        b = await setup_books(led, ns)
        load = xfer(ns, "load", b["bank"], b["card"], 1_000)
        assert await led.create_transfers([load]) == [R.OK]
        assert await led.create_transfers([replace(load, **change)]) == [result]
        assert await balances(led, b["card"]) == (0, 0, 0, 1_000)


async def test_same_id_with_other_accounts_names_the_account(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        t = xfer(ns, "t", b["bank"], b["card"], 10)
        assert await led.create_transfers([t]) == [R.OK]
        assert await led.create_transfers([xfer(ns, "t", b["merchant"], b["card"], 10)]) == [
            R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
        ]
        assert await led.create_transfers([xfer(ns, "t", b["bank"], b["merchant"], 10)]) == [
            R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
        ]


async def test_overdraft_is_refused_and_the_failure_is_permanent(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        tap = xfer(ns, "tap", b["card"], b["merchant"], 300)
        assert await led.create_transfers([tap]) == [R.EXCEEDS_CREDITS]
        # Money arrives; the same tap id still fails the same way (exactly-once), a changed
        # submission under that id is refused.
        assert await led.create_transfers([xfer(ns, "load", b["bank"], b["card"], 1_000)]) == [R.OK]
        assert await led.create_transfers([tap]) == [R.EXCEEDS_CREDITS]
        changed = xfer(ns, "tap", b["card"], b["merchant"], 200)
        assert await led.create_transfers([changed]) == [R.ID_ALREADY_FAILED]
        assert await balances(led, b["card"]) == (0, 0, 0, 1_000)


async def test_credits_must_not_exceed_debits(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        assert await led.create_transfers([xfer(ns, "a", b["bank"], b["limit"], 1)]) == [
            R.EXCEEDS_DEBITS
        ]
        assert await led.create_transfers(
            [xfer(ns, "b", b["limit"], b["bank"], 5), xfer(ns, "c", b["bank"], b["limit"], 5)]
        ) == [R.OK, R.OK]


async def test_bad_input_gets_precise_codes_and_applies_nothing(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        ghost = acct(ns, "ghost")
        cases = [
            (xfer(ns, "1", b["bank"], ghost, 5), R.CREDIT_ACCOUNT_NOT_FOUND),
            (xfer(ns, "2", ghost, b["bank"], 5), R.DEBIT_ACCOUNT_NOT_FOUND),
            (xfer(ns, "3", b["bank"], b["card"], 0), R.AMOUNT_MUST_NOT_BE_ZERO),
            (xfer(ns, "4", b["bank"], b["card"], -5), R.AMOUNT_MUST_NOT_BE_NEGATIVE),
            (xfer(ns, "5", b["bank"], b["card"], 1.5), R.AMOUNT_MUST_BE_INTEGER),  # type: ignore[arg-type]
            (xfer(ns, "5b", b["bank"], b["card"], "7"), R.AMOUNT_MUST_BE_INTEGER),  # type: ignore[arg-type]
            (xfer(ns, "6", b["bank"], b["card"], 2**63), R.AMOUNT_OUT_OF_RANGE),
            (xfer(ns, "7", b["bank"], b["bank"], 5), R.ACCOUNTS_MUST_BE_DIFFERENT),
            (xfer(ns, "8", b["bank"], b["usd"], 5), R.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER),
            (xfer(ns, "9", b["bank"], b["card"], 5, ledger=USD), R.LEDGER_MUST_MATCH),
            (xfer(ns, "10", b["bank"], b["card"], 5, ledger=0), R.LEDGER_MUST_NOT_BE_ZERO),
            (xfer(ns, "11", b["bank"], b["card"], 5, code=0), R.CODE_MUST_NOT_BE_ZERO),
            (
                xfer(ns, "12", b["bank"], b["card"], 5, timeout_s=5),
                R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER,
            ),
            (
                xfer(ns, "13", b["bank"], b["card"], 5, flags=PENDING | POST),
                R.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
            ),
            (
                xfer(ns, "14", b["bank"], b["card"], 5, flags=TransferFlags.EXPIRED),
                R.FLAGS_ARE_RESERVED,
            ),
            (xfer(ns, "15", b["bank"], b["card"], 5, pending_id=9), R.PENDING_ID_MUST_BE_ZERO),
            (xfer(ns, "16", 0, b["card"], 5), R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO),
            (xfer(ns, "17", b["bank"], -3, 5), R.CREDIT_ACCOUNT_ID_INVALID),
            (Transfer(0, b["bank"].id, b["card"].id, 5, CNY, 1), R.ID_MUST_NOT_BE_ZERO),
            (Transfer(2**128 - 1, b["bank"].id, b["card"].id, 5, CNY, 1), R.ID_MUST_NOT_BE_INT_MAX),
            (Transfer(2**128, b["bank"].id, b["card"].id, 5, CNY, 1), R.ID_OUT_OF_RANGE),
            (Transfer("abc", b["bank"].id, b["card"].id, 5, CNY, 1), R.ID_MUST_BE_INTEGER),  # type: ignore[arg-type]
            (
                Transfer(77, b["bank"].id, b["card"].id, 5, CNY, 1, timestamp=1),
                R.TIMESTAMP_MUST_BE_ZERO,
            ),
            (
                xfer(ns, "18", b["merchant"], b["card"], 5, reverses_id=12345),
                R.REVERSED_TRANSFER_NOT_FOUND,
            ),
            (xfer(ns, "19", 0, 0, 0, flags=POST), R.PENDING_ID_MUST_NOT_BE_ZERO),
            (xfer(ns, "20", 0, 0, 0, flags=VOID, pending_id=424242), R.PENDING_TRANSFER_NOT_FOUND),
        ]
        before = [await balances(led, a) for a in b.values()]
        results = await led.create_transfers([t for t, _ in cases])
        assert results == [r for _, r in cases]
        assert [await balances(led, a) for a in b.values()] == before


async def test_batch_bounds_both_sides(sqlite_url, ns):
    async with await Ledger.open(sqlite_url) as led:
        b = await setup_books(led, ns)
        full = [xfer(ns, f"b{k}", b["bank"], b["merchant"], 1) for k in range(BATCH_MAX)]
        with pytest.raises(BatchTooLargeError):
            await led.create_transfers(full + [xfer(ns, "one-more", b["bank"], b["merchant"], 1)])
        assert await balances(led, b["merchant"]) == (0, 0, 0, 0)
        assert await led.create_transfers(full) == [R.OK] * BATCH_MAX
        assert await balances(led, b["merchant"]) == (0, 0, 0, BATCH_MAX)
        with pytest.raises(BatchMalformedError):
            await led.create_transfers([{"id": 1}])  # type: ignore[list-item]
        assert await led.create_transfers([]) == []


async def test_linked_chain_is_all_or_nothing(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        chain = [
            xfer(ns, "c1", b["bank"], b["card"], 500, flags=LINKED),
            xfer(ns, "c2", b["card"], b["merchant"], 400, flags=LINKED),
            xfer(ns, "c3", b["card"], b["merchant"], 200),  # 600 > 500: fails the chain
        ]
        single = xfer(ns, "alone", b["bank"], b["merchant"], 1)
        assert await led.create_transfers(chain + [single]) == [
            R.LINKED_EVENT_FAILED,
            R.LINKED_EVENT_FAILED,
            R.EXCEEDS_CREDITS,
            R.OK,
        ]
        assert await balances(led, b["card"]) == (0, 0, 0, 0)
        assert await led.reader.lookup_transfers([chain[0].id, chain[1].id]) == []
        ok_chain = [
            xfer(ns, "d1", b["bank"], b["card"], 500, flags=LINKED),
            xfer(ns, "d2", b["card"], b["merchant"], 400),
        ]
        assert await led.create_transfers(ok_chain) == [R.OK, R.OK]
        assert await led.create_transfers(ok_chain) == [R.EXISTS, R.EXISTS]
        open_chain = [xfer(ns, "e1", b["bank"], b["card"], 5, flags=LINKED)] * 1 + [
            xfer(ns, "e2", b["bank"], b["card"], 5, flags=LINKED)
        ]
        assert await led.create_transfers(open_chain) == [
            R.LINKED_EVENT_FAILED,
            R.LINKED_EVENT_CHAIN_OPEN,
        ]
        assert await balances(led, b["card"]) == (0, 400, 0, 500)


async def test_pending_reserves_then_partial_post_releases_the_rest(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        await led.create_transfers([xfer(ns, "load", b["bank"], b["card"], 1_000)])
        hold = xfer(ns, "hold", b["card"], b["merchant"], 800, flags=PENDING)
        assert await led.create_transfers([hold]) == [R.OK]
        assert await balances(led, b["card"]) == (800, 0, 0, 1_000)
        # Pending amounts count against the flag.
        assert await led.create_transfers([xfer(ns, "tap", b["card"], b["merchant"], 300)]) == [
            R.EXCEEDS_CREDITS
        ]
        too_much = xfer(ns, "post-x", 0, 0, 801, ledger=0, code=0, flags=POST, pending_id=hold.id)
        assert await led.create_transfers([too_much]) == [R.EXCEEDS_PENDING_TRANSFER_AMOUNT]
        post = xfer(ns, "post", 0, 0, 600, ledger=0, code=0, flags=POST, pending_id=hold.id)
        assert await led.create_transfers([post]) == [R.OK]
        assert await led.create_transfers([post]) == [R.EXISTS]
        assert await balances(led, b["card"]) == (0, 600, 0, 1_000)
        assert await balances(led, b["merchant"]) == (0, 0, 0, 600)
        again = xfer(ns, "post2", 0, 0, 0, ledger=0, code=0, flags=POST, pending_id=hold.id)
        void = xfer(ns, "void", 0, 0, 0, ledger=0, code=0, flags=VOID, pending_id=hold.id)
        assert await led.create_transfers([again, void]) == [
            R.PENDING_TRANSFER_ALREADY_POSTED,
            R.PENDING_TRANSFER_ALREADY_POSTED,
        ]
        wrong = xfer(ns, "post3", b["bank"], 0, 0, ledger=0, code=0, flags=POST, pending_id=hold.id)
        assert await led.create_transfers([wrong]) == [
            R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
        ]
        not_pending = xfer(ns, "post4", 0, 0, 0, ledger=0, code=0, flags=POST, pending_id=post.id)
        assert await led.create_transfers([not_pending]) == [R.PENDING_TRANSFER_NOT_PENDING]


async def test_void_releases_and_cannot_be_posted_after(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        await led.create_transfers([xfer(ns, "load", b["bank"], b["card"], 1_000)])
        hold = xfer(ns, "hold", b["card"], b["merchant"], 700, flags=PENDING)
        void_part = xfer(ns, "v0", 0, 0, 5, ledger=0, code=0, flags=VOID, pending_id=hold.id)
        void = xfer(ns, "v", 0, 0, 0, ledger=0, code=0, flags=VOID, pending_id=hold.id)
        post = xfer(ns, "p", 0, 0, 0, ledger=0, code=0, flags=POST, pending_id=hold.id)
        assert await led.create_transfers([hold, void_part, void, post]) == [
            R.OK,
            R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT,
            R.OK,
            R.PENDING_TRANSFER_ALREADY_VOIDED,
        ]
        assert await balances(led, b["card"]) == (0, 0, 0, 1_000)


async def test_pending_expires_after_its_timeout_and_releases_the_reservation(isolated_url, ns):
    clock = FakeClock()
    async with await Ledger.open(isolated_url, clock_ns=clock) as led:
        b = await setup_books(led, ns)
        await led.create_transfers([xfer(ns, "load", b["bank"], b["card"], 1_000)])
        hold = xfer(ns, "hold", b["card"], b["merchant"], 900, flags=PENDING, timeout_s=60)
        assert await led.create_transfers([hold]) == [R.OK]
        assert await balances(led, b["card"]) == (900, 0, 0, 1_000)
        clock.offset_ns = 0
        await clock.jump_past(led, hold)
        post = xfer(ns, "post", 0, 0, 0, ledger=0, code=0, flags=POST, pending_id=hold.id)
        assert await led.create_transfers([post]) == [R.PENDING_TRANSFER_EXPIRED]
        assert await led.create_transfers([post]) == [R.PENDING_TRANSFER_EXPIRED]
        assert await balances(led, b["card"]) == (0, 0, 0, 1_000)
        [expiry] = await led.reader.lookup_transfers([expiry_id(hold.id)])
        assert expiry.flags & TransferFlags.EXPIRED and expiry.amount == 900


async def test_expire_pending_transfers_sweeps_without_a_new_transfer(isolated_url, ns):
    clock = FakeClock()
    async with await Ledger.open(isolated_url, clock_ns=clock) as led:
        b = await setup_books(led, ns)
        await led.create_transfers([xfer(ns, "load", b["bank"], b["card"], 1_000)])
        holds = [
            xfer(ns, f"h{k}", b["card"], b["merchant"], 100, flags=PENDING, timeout_s=30)
            for k in range(3)
        ]
        assert await led.create_transfers(holds) == [R.OK] * 3
        await clock.jump_past(led, holds[-1])
        assert await led.expire_pending_transfers() >= 3
        assert await balances(led, b["card"]) == (0, 0, 0, 1_000)


async def test_reversal_names_the_original_and_cannot_exceed_it(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        load = xfer(ns, "load", b["bank"], b["card"], 1_000)
        fare = xfer(ns, "fare", b["card"], b["merchant"], 400)
        assert await led.create_transfers([load, fare]) == [R.OK, R.OK]
        r1 = xfer(ns, "r1", b["merchant"], b["card"], 150, reverses_id=fare.id)
        r_wrong = xfer(ns, "rw", b["card"], b["merchant"], 10, reverses_id=fare.id)
        r2 = xfer(ns, "r2", b["merchant"], b["card"], 251, reverses_id=fare.id)
        r3 = xfer(ns, "r3", b["merchant"], b["card"], 250, reverses_id=fare.id)
        assert await led.create_transfers([r1, r_wrong, r2, r3]) == [
            R.OK,
            R.REVERSAL_MUST_SWAP_ACCOUNTS,
            R.EXCEEDS_REVERSIBLE_AMOUNT,
            R.OK,
        ]
        assert await balances(led, b["card"]) == (0, 400, 0, 1_400)
        [stored] = await led.reader.lookup_transfers([r1.id])
        assert stored.reverses_id == fare.id


async def test_concurrent_single_calls_are_group_committed_each_with_its_result(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        await led.create_transfers([xfer(ns, "load", b["bank"], b["card"], 100)])
        taps = [xfer(ns, f"tap{k}", b["card"], b["merchant"], 10) for k in range(15)]
        flushes = led.group_flushes
        results = await asyncio.gather(*(led.create_transfers([t]) for t in taps))
        assert sorted(r for [r] in results) == sorted([R.OK] * 10 + [R.EXCEEDS_CREDITS] * 5)
        assert led.group_flushes - flushes < len(taps)
        assert await balances(led, b["card"]) == (0, 100, 0, 100)


async def test_a_big_batch_retried_whole_or_in_part_answers_exists_and_moves_nothing_twice(
    ledger_url, ns
):
    """From 512 transfers on, PostgreSQL lets the primary key find repeated ids (no look-up
    first) and then applies the rules again: the answers are those of a small batch."""
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        first = [xfer(ns, f"big{k}", b["bank"], b["merchant"], 1) for k in range(600)]
        assert await led.create_transfers(first) == [R.OK] * 600
        assert await led.create_transfers(first) == [R.EXISTS] * 600
        changed = xfer(ns, "big7", b["bank"], b["merchant"], 2)
        fresh = [xfer(ns, f"more{k}", b["bank"], b["merchant"], 1) for k in range(300)]
        mixed = first[300:] + [changed] + fresh
        results = await led.create_transfers(mixed)
        assert results == [R.EXISTS] * 300 + [R.EXISTS_WITH_DIFFERENT_AMOUNT] + [R.OK] * 300
        assert await balances(led, b["merchant"]) == (0, 0, 0, 900)
        stored = await led.reader.lookup_transfers([t.id for t in fresh])
        assert len(stored) == 300


async def test_timestamps_strictly_increase(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        batch = [xfer(ns, f"t{k}", b["bank"], b["merchant"], 1) for k in range(50)]
        await asyncio.gather(*(led.create_transfers([t]) for t in batch))
        stored = await led.reader.lookup_transfers([t.id for t in batch])
        stamps = sorted(t.timestamp for t in stored)
        assert len(set(stamps)) == 50
        page = await led.reader.get_account_transfers(b["merchant"].id, limit=50)
        assert [t.timestamp for t in page.transfers] == stamps


async def test_caller_owned_connection_is_not_committed_by_the_ledger(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        t = xfer(ns, "t", b["bank"], b["merchant"], 5)
        async with led.engine.connect() as conn:
            async with conn.begin() as tx:
                assert await led.create_transfers([t], conn=conn) == [R.OK]
                assert await balances(led, b["merchant"]) == (0, 0, 0, 0)
                await tx.rollback()
        assert await led.reader.lookup_transfers([t.id]) == []
        async with led.transaction() as conn:
            assert await led.create_transfers([t], conn=conn) == [R.OK]
        assert await balances(led, b["merchant"]) == (0, 0, 0, 5)


async def test_accounts_flags_and_idempotency(ledger_url, ns):
    from ledger.types import Account, CreateAccountResult

    A = CreateAccountResult
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        card = b["card"]
        same_name = Account(card.id + 1, CNY, 1, card.name)
        both = acct(ns, "both", flags=AccountFlags(6))
        results = await led.create_accounts(
            [
                card,
                Account(card.id, CNY, 2, card.name, flags=card.flags),
                Account(card.id, CNY, 1, card.name),
                same_name,
                both,
                acct(ns, "nol", ledger=99),
                Account(0, CNY, 1, "zero"),
                Account(5, CNY, 1, " "),
            ]
        )
        assert results == [
            A.EXISTS,
            A.EXISTS_WITH_DIFFERENT_CODE,
            A.EXISTS_WITH_DIFFERENT_FLAGS,
            A.NAME_ALREADY_USED,
            A.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
            A.LEDGER_NOT_FOUND,
            A.ID_MUST_NOT_BE_ZERO,
            A.NAME_MUST_NOT_BE_EMPTY,
        ]
        linked = [
            Account(acct(ns, "l1").id, CNY, 1, f"{ns}:l1", flags=AccountFlags.LINKED),
            acct(ns, "l2", ledger=99),
        ]
        assert await led.create_accounts(linked) == [A.LINKED_EVENT_FAILED, A.LEDGER_NOT_FOUND]
        assert await led.reader.lookup_accounts([linked[0].id]) == []
