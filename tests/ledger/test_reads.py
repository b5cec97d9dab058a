"""Reads on both backends: paginated transfers by time range, per-entry balance history,
balance as of a time (recorded and effective), and the bounds of every read."""

from __future__ import annotations

import pytest

from ledger.errors import InvalidArgumentError, PageTooLargeError
from ledger.types import PAGE_MAX, AccountBalance, CreateTransferResult, TransferFlags
from ledger.writer import Ledger
from tests.ledger.helpers import acct, setup_books, xfer

R = CreateTransferResult


async def _posted(led: Ledger, ns: str, books: dict, count: int) -> list:
    transfers = [xfer(ns, "load", books["bank"], books["card"], 10_000)] + [
        xfer(ns, f"tap{k}", books["card"], books["merchant"], 100 + k) for k in range(count - 1)
    ]
    assert await led.create_transfers(transfers) == [R.OK] * count
    return await led.reader.lookup_transfers([t.id for t in transfers])


async def test_history_pages_chain_balance_before_to_after(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        books = await setup_books(led, ns)
        stored = await _posted(led, ns, books, 25)
        entries, after = [], None
        pages = 0
        while True:
            page = await led.reader.get_account_history(books["card"].id, limit=10, after=after)
            entries += page.entries
            pages += 1
            if page.next_after is None:
                break
            after = page.next_after
        assert pages == 3 and len(entries) == 25
        assert [e.transfer.id for e in entries] == [t.id for t in stored]
        assert entries[0].balance_before == AccountBalance()
        assert entries[0].balance_after.credit_balance == 10_000
        for previous, entry in zip(entries, entries[1:], strict=False):
            assert entry.balance_before == previous.balance_after
            assert entry.is_debit
            delta = entry.balance_before.credit_balance - entry.balance_after.credit_balance
            assert delta == entry.transfer.amount
        [card] = await led.reader.lookup_accounts([books["card"].id])
        assert entries[-1].balance_after.credit_balance == card.balance.credit_balance


async def test_transfers_by_time_range(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        books = await setup_books(led, ns)
        stored = await _posted(led, ns, books, 10)
        since, until = stored[3].timestamp, stored[7].timestamp
        page = await led.reader.get_account_transfers(
            books["card"].id, since=since, until=until, limit=100
        )
        assert [t.id for t in page.transfers] == [t.id for t in stored[3:7]]
        assert page.next_after is None


async def test_balance_as_of_a_timestamp(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        books = await setup_books(led, ns)
        stored = await _posted(led, ns, books, 5)
        card = books["card"].id
        assert (
            await led.reader.get_balance_as_of(card, stored[0].timestamp - 1)
        ).credit_balance == 0
        running = 10_000
        assert (
            await led.reader.get_balance_as_of(card, stored[0].timestamp)
        ).credit_balance == running
        for t in stored[1:]:
            running -= t.amount
            as_of = await led.reader.get_balance_as_of(card, t.timestamp)
            assert as_of.credit_balance == running
        assert await led.reader.get_balance_as_of(acct(ns, "nobody").id, 10**19) is None


async def test_back_dated_transfer_counts_at_its_effective_time(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        books = await setup_books(led, ns)
        stored = await _posted(led, ns, books, 2)
        back_dated_at = stored[0].timestamp - 1_000_000
        late = xfer(ns, "late", books["bank"], books["card"], 555, effective_at=back_dated_at)
        assert await led.create_transfers([late]) == [R.OK]
        card = books["card"].id
        effective = await led.reader.get_effective_balance_as_of(card, back_dated_at)
        assert effective.credit_balance == 555
        recorded = await led.reader.get_balance_as_of(card, back_dated_at)
        assert recorded.credit_balance == 0


async def test_read_bounds_both_sides(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        books = await setup_books(led, ns)
        card = books["card"].id
        assert (await led.reader.get_account_transfers(card, limit=PAGE_MAX)).transfers == []
        with pytest.raises(PageTooLargeError):
            await led.reader.get_account_transfers(card, limit=PAGE_MAX + 1)
        with pytest.raises(InvalidArgumentError):
            await led.reader.get_account_history(card, limit=0)
        with pytest.raises(InvalidArgumentError):
            await led.reader.lookup_accounts([0])
        with pytest.raises(InvalidArgumentError):
            await led.reader.lookup_transfers(["not-an-id"])  # type: ignore[list-item]
        assert await led.reader.lookup_transfers([1] * PAGE_MAX) == []
        with pytest.raises(PageTooLargeError):
            await led.reader.lookup_transfers([1] * (PAGE_MAX + 1))


async def test_credits_available_agrees_with_the_accounts_in_the_order_asked(ledger_url, ns):
    """The clearing engine's shadow balances: pending debits count against what a card may
    spend, an unknown id answers None in its place, a repeated id answers twice."""
    async with await Ledger.open(ledger_url) as led:
        books = await setup_books(led, ns)
        await _posted(led, ns, books, 4)  # 10,000 loaded, 100 + 101 + 102 spent
        hold = xfer(ns, "hold", books["card"], books["merchant"], 500, flags=TransferFlags.PENDING)
        assert await led.create_transfers([hold]) == [R.OK]
        card, merchant = books["card"].id, books["merchant"].id
        unknown = acct(ns, "never-opened").id
        asked = [merchant, unknown, card, card]
        got = await led.credits_available(asked)
        states = {s.id: s for s in await led.reader.lookup_accounts([card, merchant])}
        assert got == [
            states[merchant].balance.credit_available,
            None,
            10_000 - 303 - 500,
            10_000 - 303 - 500,
        ]
        assert await led.credits_available([]) == []
        with pytest.raises(InvalidArgumentError):
            await led.credits_available([0])
