"""The cards check reads only what the day's links can reach (its earlier transactions through the
primary key, not a month of every card): the links it reports must be exactly those of the window
over the whole lookback, and the cards ahead of the ledger exactly those whose last transaction
says so. Hypothesis draws cards whose purses ran over several days, with counters out of time
order, skipped, at the lookback's edge and after the day; the reference is computed here, in
Python, from the rows themselves."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from clearing.calendar import BusinessCalendar
from ledger.ids import account_id, transfer_id
from ledger.reader import LedgerReader
from ledger.types import Account, CreateTransferResult, LedgerSpec, Transfer
from ledger.writer import Ledger
from reconciliation.checks.base import CheckContext
from reconciliation.checks.cards import CHAIN_LOOKBACK, _ahead_of_ledger, _chain_rows, cleared

CALENDAR = BusinessCalendar()
DAY = date(2026, 10, 15)
CNY = 156
_serial = itertools.count(1)

# One purse's transactions: (days before the day (-1: the day after), second of that day,
# card counter, balance before, balance after). Counters are distinct within a purse (the
# primary key); the rest is free, so chains skip, repeat balances and run out of time order.
_rows = st.lists(
    st.tuples(
        st.sampled_from([-1, 0, 0, 0, 1, 2, 5, 30, 31, 32, 40]),
        st.integers(0, 86_399),
        st.integers(1, 30),
        st.integers(0, 9),
        st.integers(0, 9),
    ),
    max_size=8,
    unique_by=lambda r: r[2],
)
_card = st.tuples(_rows, _rows, st.integers(0, 12))  # offline, online, ledger balance


def _at(days_before: int, second: int, serial: int) -> datetime:
    start = CALENDAR.day_start(DAY - timedelta(days=days_before))
    # A distinct microsecond per row: no two transactions of a card at the same instant.
    return start + timedelta(seconds=second, microseconds=serial % 1_000_000)


def _expected_links(rows: list[dict]) -> set[tuple]:
    """LAG over each purse by (counter, time, terminal, serial) across the lookback; the day's
    links that repeat a counter, skip one, or do not follow the balance before."""
    low = CALENDAR.day_start(DAY) - CHAIN_LOOKBACK
    start, end = CALENDAR.day_start(DAY), CALENDAR.day_end(DAY)
    found = set()
    purses: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if low <= r["occurred_at"] < end:
            purses.setdefault((r["card_no"], r["purse"]), []).append(r)
    for chain in purses.values():
        chain.sort(
            key=lambda r: (r["card_counter"], r["occurred_at"], r["terminal_id"], r["terminal_seq"])
        )
        for prev, r in itertools.pairwise(chain):
            if r["occurred_at"] < start:
                continue
            if (
                r["card_counter"] == prev["card_counter"]
                or r["card_counter"] - prev["card_counter"] > 1
                or r["balance_before_fen"] != prev["balance_after_fen"]
            ):
                found.add(
                    (
                        r["card_no"],
                        r["purse"],
                        r["card_counter"],
                        prev["card_counter"],
                        prev["balance_after_fen"],
                    )
                )
    return found


def _expected_ahead(rows: list[dict], ledger_fen: dict[str, int]) -> set[tuple]:
    """Cards that transacted in the day whose latest transaction (each purse's highest counter,
    whenever it happened; the later of the two) holds more than the card's ledger account."""
    start, end = CALENDAR.day_start(DAY), CALENDAR.day_end(DAY)
    active = {r["card_no"] for r in rows if start <= r["occurred_at"] < end}
    out = set()
    for card_no in active:
        lasts = []
        for purse in ("offline", "online"):
            mine = [r for r in rows if r["card_no"] == card_no and r["purse"] == purse]
            if mine:
                lasts.append(max(mine, key=lambda r: r["card_counter"]))
        last = max(lasts, key=lambda r: r["occurred_at"])
        if last["balance_after_fen"] > ledger_fen[card_no]:
            out.add((card_no, last["balance_after_fen"], ledger_fen[card_no]))
    return out


async def _fund(ledger: Ledger, ledger_fen: dict[str, int]) -> None:
    await ledger.create_ledgers([LedgerSpec(id=CNY, name="CNY in fen")])
    source = f"test:funding:{next(_serial)}"
    accounts = [Account(account_id(source), CNY, 1, source)] + [
        Account(account_id(f"card:{c}"), CNY, 2001, f"card:{c}") for c in ledger_fen
    ]
    await ledger.create_accounts(accounts)
    transfers = [
        Transfer(
            transfer_id(f"fund:{c}:{next(_serial)}"),
            accounts[0].id,
            account_id(f"card:{c}"),
            fen,
            CNY,
            1,
        )
        for c, fen in ledger_fen.items()
        if fen
    ]
    assert await ledger.create_transfers(transfers) == [CreateTransferResult.OK] * len(transfers)


async def _check(engine: AsyncEngine, ledger: Ledger, cards: list[tuple]) -> None:
    rows: list[dict] = []
    ledger_fen: dict[str, int] = {}
    for offline, online, balance in cards:
        card_no = f"31{next(_serial):014d}"
        ledger_fen[card_no] = balance
        for purse, drawn in (("offline", offline), ("online", online)):
            for days_before, second, counter, before, after in drawn:
                serial = next(_serial)
                rows.append(
                    {
                        "card_no": card_no,
                        "purse": purse,
                        "card_counter": counter,
                        "tap_record_id": serial,
                        "terminal_id": f"T{serial % 3}",
                        "terminal_seq": serial,
                        "participant_code": "bus",
                        "kind": "purchase" if purse == "offline" else "load",
                        "txn_type": 6,
                        "card_type": "adult",
                        "amount_fen": 1,
                        "balance_before_fen": before,
                        "balance_after_fen": after,
                        "full_fare_fen": 1,
                        "subsidy_fen": 0,
                        "insured_fen": 0,
                        "occurred_at": _at(days_before, second, serial),
                        "business_day": DAY,
                        "settlement_day": DAY,
                        "outcome": "posted",
                        "run_id": 1,
                        "cleared_at": datetime.now(UTC),
                    }
                )
    await _fund(ledger, ledger_fen)
    async with engine.begin() as conn:
        await conn.execute(delete(cleared))
        if rows:
            await conn.execute(insert(cleared), rows)
        ctx = CheckContext(conn, LedgerReader(engine), DAY, CALENDAR, datetime.now(UTC))
        links = {
            (r.card_no, r.purse, r.card_counter, r.prev_counter, r.prev_after_fen)
            for r in (await conn.execute(_chain_rows(ctx))).all()
        }
        ahead = {
            (r.card_no, int(r.balance_after_fen), int(r.ledger_fen))
            for r in (await conn.execute(_ahead_of_ledger(ctx))).all()
            if r.card_no in ledger_fen
        }
        await conn.rollback()
    assert links == _expected_links(rows)
    assert ahead == _expected_ahead(rows, ledger_fen)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_the_cards_check_reads_the_same_links_as_the_whole_lookback(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "recon_pg_url")

    async def open_ledger() -> Ledger:
        return await Ledger.open(url)

    loop = asyncio.new_event_loop()
    ledger = loop.run_until_complete(open_ledger())

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(cards=st.lists(_card, min_size=1, max_size=3))
    def check(cards: list[tuple]) -> None:
        loop.run_until_complete(_check(ledger.engine, ledger, cards))

    try:
        check()
    finally:
        loop.run_until_complete(ledger.close())
        loop.close()
