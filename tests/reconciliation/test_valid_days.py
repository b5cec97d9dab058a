"""Days of valid activity reconcile with no break at all (Hypothesis drives the day: which cards
ride where, for how much, batched how, uploaded in which order, re-sent or not), and the pure
rules: a valid card chain never breaks, a skipped counter is a gap, a changed balance a jump;
balanced books over the chart always hold the float."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearing.books.chart import AccountType
from ledger.reader import CodeTotals
from reconciliation.checks.cards import Link, classify
from reconciliation.checks.ledger import (
    HELD,
    OWED_TO_OTHERS,
    RESIDENTS,
    TAKEN_OUT,
    float_sides,
    normal_balances,
)
from tests.clearing.test_engine import BUS_TERMINAL, BUS_TERMINAL_2, build_world
from tests.reconciliation.conftest import CALENDAR, past_day, reconcile
from tests.reconciliation.test_seeded_day import ADULT, CLONED, QUIET, SKIPPER, Clock

CARDS = (ADULT, CLONED, SKIPPER, QUIET)
TERMINALS = (BUS_TERMINAL, BUS_TERMINAL_2)
taps = st.tuples(st.integers(0, 3), st.integers(0, 1), st.integers(1, 400))


async def _valid_day(url: str, tmp: Path, plan: list, chunk: int, order: list[int], resend: bool):
    world = await build_world(url, tmp)
    try:
        day = past_day(3)
        tick = Clock(CALENDAR.day_start(day) + timedelta(hours=1))
        per_terminal: dict[str, list] = {t: [] for t in TERMINALS}
        for card, terminal, amount in plan:
            card_no, terminal_id = CARDS[card], TERMINALS[terminal]
            if world.cards[card_no].balance_fen >= amount:
                record = world.ride(card_no, amount, terminal_id=terminal_id, at=tick())
                per_terminal[terminal_id].append(record)
        batches = [
            (terminal_id, f"{terminal_id}-{i}", records[i : i + chunk])
            for terminal_id, records in per_terminal.items()
            for i in range(0, len(records), chunk)
        ]
        ranked = sorted(range(len(batches)), key=lambda i: order[i % len(order)] * 100 + i)
        for i in ranked:
            terminal_id, batch_id, records = batches[i]
            await world.upload(records, terminal_id=terminal_id, batch_id=batch_id)
            if resend:  # a lost acknowledgement: the same batch again, stored once
                await world.upload(records, terminal_id=terminal_id, batch_id=batch_id)
            if i % 2:
                await world.engine.clear_pending()
        await world.engine.clear_pending()
        return await reconcile(world, day)
    finally:
        await world.ledger.close()


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=st.lists(taps, min_size=1, max_size=24),
    chunk=st.integers(1, 6),
    order=st.permutations(list(range(8))),
    resend=st.booleans(),
)
def test_a_day_of_valid_activity_has_no_break(
    sqlite_url: str, plan: list, chunk: int, order: list[int], resend: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "onecard.db"
        shutil.copy(sqlite_url.split("///", 1)[1], copy)
        url = f"sqlite+aiosqlite:///{copy.as_posix()}"
        summary = asyncio.run(_valid_day(url, Path(tmp), plan, chunk, order, resend))
    assert summary.found == 0, summary
    for check in summary.checks:
        assert check.matched == check.total, check
    assert {c.name: c.total > 0 for c in summary.checks} == {
        "ledger": True,
        "terminals": True,
        "cards": True,
        "stripe": False,  # no Stripe key: nothing read (tests/reconciliation/test_stripe_*)
        "bank": False,  # nothing settled, no statement (tests/reconciliation/test_bank_*)
        "billers": False,  # no bill paid
        "funds": False,
        "escrow_balance": False,  # no statement (tests/reconciliation/test_escrow_balance.py)
    }


def _chain(amounts: list[int], start_fen: int) -> list[Link]:
    links, balance, prev = [], start_fen, None
    for counter, amount in enumerate(amounts):
        after = balance - amount
        links.append(
            Link(
                "3100000000000000",
                "offline",
                counter,
                balance,
                after,
                counter,
                prev[0] if prev else None,
                prev[1] if prev else None,
                counter - 1,
            )
        )
        prev, balance = (counter, after), after
    return links


@given(st.lists(st.integers(0, 500), min_size=1, max_size=30), st.integers(15_000, 20_000))
def test_a_valid_card_chain_never_breaks(amounts: list[int], start_fen: int) -> None:
    assert [classify(link) for link in _chain(amounts, start_fen)] == [None] * len(amounts)


@given(
    st.lists(st.integers(0, 500), min_size=3, max_size=30),
    st.data(),
)
def test_a_missing_tap_is_a_gap_and_a_changed_balance_a_jump(amounts: list[int], data) -> None:
    links = _chain(amounts, 20_000)
    i = data.draw(st.integers(1, len(links) - 2))
    skipped = links[:i] + links[i + 1 :]
    relinked = skipped[i]
    relinked = replace(
        relinked,
        prev_counter=links[i - 1].card_counter,
        prev_after_fen=links[i - 1].balance_after_fen,
    )
    assert classify(relinked) == "gap"
    bump = data.draw(st.integers(1, 1000))
    tampered = replace(links[i], balance_before_fen=links[i].balance_before_fen + bump)
    assert classify(tampered) == "jump"
    assert classify(tampered, other_purse_fen=bump) is None  # a load in between explains it
    assert classify(replace(links[i], card_counter=links[i - 1].card_counter)) == "reuse"


CHART = [*RESIDENTS, *HELD, *OWED_TO_OTHERS, *TAKEN_OUT]


@given(st.lists(st.tuples(st.sampled_from(CHART), st.sampled_from(CHART), st.integers(1, 10**9))))
def test_balanced_books_over_the_chart_hold_the_float(moves: list) -> None:
    debits: dict[int, int] = {}
    credits: dict[int, int] = {}
    for debit, credit, amount in moves:
        debits[int(debit)] = debits.get(int(debit), 0) + amount
        credits[int(credit)] = credits.get(int(credit), 0) + amount
    totals = [
        CodeTotals(156, code, 1, debits.get(code, 0), credits.get(code, 0), 0, 0)
        for code in {*debits, *credits}
    ]
    residents, held = float_sides(normal_balances(totals, 156))
    assert residents == held


def test_an_account_outside_the_chart_breaks_the_float() -> None:
    totals = [
        CodeTotals(156, int(AccountType.BANK_ESCROW), 1, 500, 0, 0, 0),
        CodeTotals(156, 9999, 1, 0, 500, 0, 0),
    ]
    assert float_sides(normal_balances(totals, 156)) == (0, 500)
