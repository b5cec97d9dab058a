"""The must-not-exceed limits at their edges, on both flags and both backends: the exact balance
is `ok`, one fen more is refused, and pending amounts count against the limit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ledger import rules
from ledger.types import AccountFlags, CreateTransferResult, Transfer, TransferFlags
from ledger.writer import Ledger
from tests.ledger.helpers import CNY, acct, balances, setup_books, xfer

R = CreateTransferResult
PENDING = TransferFlags.PENDING
VOID = TransferFlags.VOID_PENDING_TRANSFER
DMNEC = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
CMNED = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
LIMITED, OTHER = 1, 2


def _one(
    flags: AccountFlags, limited: tuple[int, int, int, int], t: Transfer
) -> CreateTransferResult:
    batch = rules.TransferBatch(
        accounts={
            LIMITED: rules.Balances(CNY, int(flags), *limited),
            OTHER: rules.Balances(CNY, 0, 0, 0, 0, 0),
        },
        transfers={},
        failures={},
        resolutions={},
        reversed_totals={},
        timestamp_first=1,
        timestamp_count=1,
    )
    [[result]] = rules.create_transfers(batch, [[t]])
    return result


@given(
    credits=st.integers(0, 10**6),
    pending_share=st.floats(0, 1),
    posted_share=st.floats(0, 1),
    extra=st.integers(-3, 3),
    pending=st.booleans(),
)
def test_debits_may_reach_the_credits_exactly_and_pending_debits_count(
    credits: int, pending_share: float, posted_share: float, extra: int, pending: bool
) -> None:
    debits_pending = int(credits * pending_share)
    debits_posted = int((credits - debits_pending) * posted_share)
    room = credits - debits_pending - debits_posted
    amount = room + extra
    if amount <= 0:
        return
    t = Transfer(10, LIMITED, OTHER, amount, CNY, 1, PENDING if pending else TransferFlags.NONE)
    result = _one(DMNEC, (debits_pending, debits_posted, 0, credits), t)
    assert result is (R.OK if amount <= room else R.EXCEEDS_CREDITS)


@given(
    debits=st.integers(0, 10**6),
    pending_share=st.floats(0, 1),
    posted_share=st.floats(0, 1),
    extra=st.integers(-3, 3),
    pending=st.booleans(),
)
def test_credits_may_reach_the_debits_exactly_and_pending_credits_count(
    debits: int, pending_share: float, posted_share: float, extra: int, pending: bool
) -> None:
    credits_pending = int(debits * pending_share)
    credits_posted = int((debits - credits_pending) * posted_share)
    room = debits - credits_pending - credits_posted
    amount = room + extra
    if amount <= 0:
        return
    t = Transfer(10, OTHER, LIMITED, amount, CNY, 1, PENDING if pending else TransferFlags.NONE)
    result = _one(CMNED, (0, debits, credits_pending, credits_posted), t)
    assert result is (R.OK if amount <= room else R.EXCEEDS_DEBITS)


async def test_debits_must_not_exceed_credits_at_the_edge(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        card, shop, bank = b["card"], b["merchant"], b["bank"]
        assert await led.create_transfers([xfer(ns, "load", bank, card, 1_000)]) == [R.OK]
        assert await led.create_transfers([xfer(ns, "over", card, shop, 1_001)]) == [
            R.EXCEEDS_CREDITS
        ]
        assert await led.create_transfers([xfer(ns, "all", card, shop, 1_000)]) == [R.OK]
        assert await led.create_transfers([xfer(ns, "one", card, shop, 1)]) == [R.EXCEEDS_CREDITS]
        assert await balances(led, card) == (0, 1_000, 0, 1_000)


async def test_pending_debits_count_against_the_credits(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        card, shop, bank = b["card2"], b["merchant"], b["bank"]
        assert await led.create_transfers([xfer(ns, "load", bank, card, 1_000)]) == [R.OK]
        hold = xfer(ns, "hold", card, shop, 400, flags=PENDING)
        assert await led.create_transfers([hold]) == [R.OK]
        assert await led.create_transfers(
            [
                xfer(ns, "p601", card, shop, 601),
                xfer(ns, "h601", card, shop, 601, flags=PENDING),
                xfer(ns, "h600", card, shop, 600, flags=PENDING),
                xfer(ns, "p1", card, shop, 1),
            ]
        ) == [R.EXCEEDS_CREDITS, R.EXCEEDS_CREDITS, R.OK, R.EXCEEDS_CREDITS]
        assert await balances(led, card) == (1_000, 0, 0, 1_000)
        # Voiding the hold frees exactly its 400 fen.
        void = Transfer(hold.id + 1, 0, 0, 0, 0, 0, VOID, pending_id=hold.id)
        assert await led.create_transfers([void]) == [R.OK]
        assert await led.create_transfers(
            [xfer(ns, "p401", card, shop, 401), xfer(ns, "p400", card, shop, 400)]
        ) == [R.EXCEEDS_CREDITS, R.OK]
        assert await balances(led, card) == (600, 400, 0, 1_000)


async def test_credits_must_not_exceed_debits_at_the_edge(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        limit, bank = b["limit"], b["bank"]
        assert await led.create_transfers([xfer(ns, "draw", limit, bank, 1_000)]) == [R.OK]
        assert await led.create_transfers([xfer(ns, "over", bank, limit, 1_001)]) == [
            R.EXCEEDS_DEBITS
        ]
        assert await led.create_transfers([xfer(ns, "all", bank, limit, 1_000)]) == [R.OK]
        assert await led.create_transfers([xfer(ns, "one", bank, limit, 1)]) == [R.EXCEEDS_DEBITS]
        assert await balances(led, limit) == (0, 1_000, 0, 1_000)


async def test_pending_credits_count_against_the_debits(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        bank = b["bank"]
        limit = acct(ns, "limit2", flags=CMNED)
        assert await led.create_accounts([limit]) == ["ok"]
        assert await led.create_transfers([xfer(ns, "draw", limit, bank, 1_000)]) == [R.OK]
        hold = xfer(ns, "hold", bank, limit, 400, flags=PENDING)
        assert await led.create_transfers([hold]) == [R.OK]
        assert await led.create_transfers(
            [
                xfer(ns, "p601", bank, limit, 601),
                xfer(ns, "h601", bank, limit, 601, flags=PENDING),
                xfer(ns, "p600", bank, limit, 600),
                xfer(ns, "p1", bank, limit, 1),
            ]
        ) == [R.EXCEEDS_DEBITS, R.EXCEEDS_DEBITS, R.OK, R.EXCEEDS_DEBITS]
        assert await balances(led, limit) == (0, 1_000, 400, 600)
        void = Transfer(hold.id + 1, 0, 0, 0, 0, 0, VOID, pending_id=hold.id)
        assert await led.create_transfers([void]) == [R.OK]
        assert await led.create_transfers(
            [xfer(ns, "p401", bank, limit, 401), xfer(ns, "p400", bank, limit, 400)]
        ) == [R.EXCEEDS_DEBITS, R.OK]
        assert await balances(led, limit) == (0, 1_000, 0, 1_000)
