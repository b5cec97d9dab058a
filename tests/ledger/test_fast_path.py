"""The rules' fast path for plain transfers (rules._apply_plain) decides exactly as the general
path: same results, rows, balances, stored ids and remembered failures, on random batches that
mix plain transfers, chains whose later members fail, replays, overdrafts, unknown accounts,
other ledgers and two-phase transfers; and a big batch (the COPY path) on both backends."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import backends, rules
from ledger.types import AccountFlags, CreateTransferResult, Transfer, TransferFlags
from ledger.writer import Ledger
from tests.ledger.helpers import CNY, USD, balances, setup_books, xfer

R = CreateTransferResult
LINKED = TransferFlags.LINKED
BANK, CARD, SHOP, LIMIT, OTHER, GHOST = 1, 2, 3, 4, 5, 99
DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)


def _world() -> rules.TransferBatch:
    return rules.TransferBatch(
        accounts={
            BANK: rules.Balances(CNY, 0, 0, 0, 0, 0),
            CARD: rules.Balances(CNY, DMNEC, 0, 0, 0, 300),
            SHOP: rules.Balances(CNY, 0, 0, 0, 0, 0),
            LIMIT: rules.Balances(CNY, CMNED, 0, 200, 0, 0),
            OTHER: rules.Balances(USD, 0, 0, 0, 0, 0),
        },
        transfers={7: Transfer(7, BANK, SHOP, 5, CNY, 1, timestamp=1)},
        failures={8: (Transfer(8, CARD, SHOP, 10**9, CNY, 1), R.EXCEEDS_CREDITS)},
        resolutions={},
        reversed_totals={},
        timestamp_first=1000,
        timestamp_count=200,
    )


_ACCOUNTS = st.sampled_from([BANK, CARD, SHOP, LIMIT, OTHER, GHOST])
_TRANSFER = st.builds(
    lambda key, debit, credit, amount, ledger, linked, pending, flag_type: Transfer(
        key,
        debit,
        credit,
        amount,
        ledger,
        1,
        flag_type(int(LINKED) * linked | int(TransferFlags.PENDING) * pending),
    ),
    key=st.integers(1, 12),
    debit=_ACCOUNTS,
    credit=_ACCOUNTS,
    amount=st.integers(0, 150),
    ledger=st.sampled_from([CNY, CNY, CNY, USD]),
    linked=st.booleans(),
    pending=st.sampled_from([False, False, False, True]),
    flag_type=st.sampled_from([int, TransferFlags]),
)


def _state(batch: rules.TransferBatch) -> tuple[object, ...]:
    return (
        {a: (b.ledger, b.flags, *b.as_tuple()) for a, b in batch.accounts.items()},
        sorted(batch.transfers),
        batch.rows,
        batch.new_failures,
        sorted(batch.failures),
        batch.touched,
        batch._next_timestamp,
    )


@settings(max_examples=300, deadline=None)
@given(requests=st.lists(st.lists(_TRANSFER, max_size=12), min_size=1, max_size=4))
def test_the_fast_path_decides_as_the_general_path(requests: list[list[Transfer]]) -> None:
    fast = _world()
    fast_results = rules.create_transfers(fast, requests)
    slow = _world()
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(rules, "_apply_plain", lambda *_: False)
        slow_results = rules.create_transfers(slow, copy.deepcopy(requests))
    assert fast_results == slow_results
    assert _state(fast) == _state(slow)
    # In steps (as PostgreSQL's COPY path runs them): the same outcome, and the rows seen at
    # each pause are final (a prefix of the rows at the end).
    stepped = _world()
    stepped_results: list[list[R]] = []
    seen: list[list[rules.PostedRow]] = []
    for _ in rules.create_transfers_in_steps(stepped, requests, stepped_results, 3):
        seen.append(list(stepped.rows))
    assert stepped_results == fast_results
    assert _state(stepped) == _state(fast)
    assert all(stepped.rows[: len(rows)] == rows for rows in seen)


async def test_a_big_batch_of_chains_fails_whole_chains_and_replays_as_exists(
    ledger_url, ns, monkeypatch
):
    """600 transfers (PostgreSQL writes them with COPY, here in steps of about 7 as the rules
    decide them): pairs card -> shop LINKED with card -> bank; every third pair overdraws the
    card in its second member, so the pair fails whole; the replay of the batch answers
    `exists` or the remembered failure."""
    monkeypatch.setattr(backends, "COPY_STEP_ROWS", 7)
    async with await Ledger.open(ledger_url) as ledger:
        books = await setup_books(ledger, ns)
        bank, card, shop = books["bank"], books["card"], books["card2"]
        assert await ledger.create_transfers([xfer(ns, "fund", bank, card, 1_000)]) == [R.OK]
        batch: list[Transfer] = []
        expected: list[R] = []
        for k in range(300):
            over = k % 3 == 2
            batch.append(xfer(ns, f"a{k}", card, shop, 1, flags=LINKED))
            batch.append(xfer(ns, f"b{k}", card, bank, 10**6 if over else 1))
            expected += [R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS] if over else [R.OK, R.OK]
        assert await ledger.create_transfers(batch) == expected
        assert await balances(ledger, card) == (0, 400, 0, 1_000)
        assert await balances(ledger, shop) == (0, 0, 0, 200)
        again = [R.EXISTS if r is R.OK else r for r in expected]
        assert await ledger.create_transfers(batch) == again
        assert await balances(ledger, card) == (0, 400, 0, 1_000)
