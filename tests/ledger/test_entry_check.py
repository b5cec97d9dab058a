"""The night's form of the balance check (ledger.reader: `window_breaks`, `entry_breaks`), which
reads a window's entries and the last entries of the accounts they touched instead of every
transfer ever: over any mix of plain and two-phase transfers it finds nothing, as the full sum
does; a balance changed behind the ledger's back is found on its account if the window touched
it (and only by the full sum if not); an entry written behind the ledger (its recorded balances
not those before it plus its amounts) is found in the window it falls in, whether it is an
account's first entry there or a later one, and not outside."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from clearing.calendar import BusinessCalendar
from ledger.reader import (
    BalanceMismatch,
    LedgerReader,
    WindowBreak,
    balance_mismatches,
    entries_in,
    entry_breaks,
    window_breaks,
)
from ledger.tables import transfers
from ledger.types import CreateTransferResult, TransferFlags
from ledger.writer import Ledger
from reconciliation.checks import ledger as ledger_check
from reconciliation.checks.base import BreakKind, CheckContext, Scope
from reconciliation.checks.ledger import LedgerCheck, ledger_ns
from tests.ledger.helpers import (
    books_with_history,
    last_timestamp,
    setup_books,
    write_behind,
    xfer,
)

R = CreateTransferResult
PENDING, POST, VOID = (
    TransferFlags.PENDING,
    TransferFlags.POST_PENDING_TRANSFER,
    TransferFlags.VOID_PENDING_TRANSFER,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def own_db(request: pytest.FixtureRequest) -> str:
    """A database of this test's own: the checks read every account and every entry in it."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "fresh_pg_url")


async def _checked(url: str, since: int, until: int) -> tuple[list, list, list, int]:
    """(entry breaks in the window, the touched accounts off their last entry, the full sum's
    mismatches, entries in the window). The accounts whose window does not add up are those
    with an entry break, and asking for those accounts' entries finds the same breaks."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            breaks = [e async for e in entry_breaks(conn, since, until)]
            found = [w async for w in window_breaks(conn, since, until)]
            windows = [w for w in found if isinstance(w, WindowBreak)]
            off = [m for m in found if isinstance(m, BalanceMismatch)]
            assert sorted(w.account_id for w in windows) == sorted({e.account_id for e in breaks})
            named = [w.account_id for w in windows]
            again = [e async for e in entry_breaks(conn, since, until, named)] if named else []
            assert again == breaks
            full = [m async for m in balance_mismatches(conn)]
            return breaks, off, full, await entries_in(conn, since, until)
    finally:
        await engine.dispose()


# One step: (kind, from, to, amount, which earlier pending transfer a post or void names).
_STEP = st.tuples(
    st.sampled_from(["plain", "plain", "pending", "post", "void"]),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(1, 400),
    st.integers(0, 5),
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    batches=st.lists(st.lists(_STEP, min_size=1, max_size=8), min_size=1, max_size=3),
    split=st.integers(0, 3),
    span=st.integers(1, 4),
)
def test_any_mix_of_transfers_checks_clean_as_the_full_sum_does(
    own_db: str, batches: list[list[tuple[str, int, int, int, int]]], split: int, span: int
) -> None:
    """Transfers plain, pending, posted (in part or whole) and voided, some refused, in a few
    batches; a window from any batch to any later one (entries after it too). Every entry in it
    links to the one before; every account holds what its last entry records; the full sum
    agrees."""

    async def run() -> None:
        ns = f"h{datetime.now(UTC).timestamp():.6f}".replace(".", "")
        start = await last_timestamp(own_db)
        stamps = [start + 1]
        async with await Ledger.open(own_db) as led:
            books = await setup_books(led, ns)
            names = ["bank", "card", "card2", "merchant"]
            await led.create_transfers(
                [
                    xfer(ns, f"fund{k}", books["bank"], books[n], 10_000)
                    for k, n in enumerate(names[1:])
                ]
            )
            pendings: list[tuple[int, int]] = []  # (id, amount) of accepted pending transfers
            for b, steps in enumerate(batches):
                stamps.append(await last_timestamp(own_db) + 1)
                batch = []
                for s, (kind, src, dst, amount, which) in enumerate(steps):
                    key = f"b{b}s{s}"
                    debit, credit = books[names[src]], books[names[(src + 1 + dst) % 4]]
                    if kind in ("post", "void") and pendings:
                        pending_id, held = pendings[which % len(pendings)]
                        flags = POST if kind == "post" else VOID
                        part = min(amount, held) if kind == "post" else 0
                        batch.append(
                            xfer(
                                ns,
                                key,
                                0,
                                0,
                                part,
                                flags=flags,
                                pending_id=pending_id,
                                ledger=0,
                                code=0,
                            )
                        )
                    else:
                        flags = PENDING if kind == "pending" else TransferFlags.NONE
                        batch.append(xfer(ns, key, debit, credit, amount, flags=flags))
                results = await led.create_transfers(batch)
                for t, result in zip(batch, results, strict=True):
                    if result is R.OK and t.flags & PENDING:
                        pendings.append((t.id, t.amount))
        stamps.append(await last_timestamp(own_db) + 1)
        first = min(split, len(stamps) - 2)
        since, until = stamps[first], stamps[min(first + span, len(stamps) - 1)]
        breaks, off, full, entries = await _checked(own_db, since, until)
        assert breaks == [] and off == [] and full == []
        engine = create_async_engine(own_db)
        try:
            async with engine.connect() as conn:
                window = (transfers.c.timestamp >= since) & (transfers.c.timestamp < until)
                rows = (await conn.execute(select(func.count()).where(window))).scalar_one()
        finally:
            await engine.dispose()
        assert entries == 2 * rows

    asyncio.run(run())


async def _execute(url: str, statement) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(statement)
    finally:
        await engine.dispose()


async def test_a_balance_changed_behind_the_ledger_is_found_on_its_account(own_db, ns):
    await books_with_history(own_db, ns)
    tap_at = await last_timestamp(own_db)
    for name in ("merchant", "card2"):  # the tap touched the merchant; nothing touched card2
        await _execute(
            own_db,
            text(
                "UPDATE ledger_accounts SET credits_posted = credits_posted + 1"
                f" WHERE name = '{ns}:{name}'"
            ),
        )
    breaks, off, full, _ = await _checked(own_db, tap_at, tap_at + 1)
    assert breaks == []  # every entry is as the ledger wrote it
    assert [(m.name, m.stored, m.summed) for m in off] == [
        (f"{ns}:merchant", (0, 0, 0, 301), (0, 0, 0, 300))
    ]
    # An account the window did not touch is left to the full sum.
    assert sorted(m.name for m in full) == [f"{ns}:card2", f"{ns}:merchant"]


@pytest.mark.parametrize("first_in_window", [True, False])
async def test_an_entry_written_behind_the_ledger_is_found_in_its_window_only(
    own_db, ns, first_in_window
):
    books = await books_with_history(own_db, ns)
    tap_at = await last_timestamp(own_db)
    rogue_at = tap_at + 1_000
    rogue = await write_behind(own_db, ns, books, rogue_at)
    # The window starts at the rogue entry (the first of its accounts there: checked against
    # their last entries before it) or before the tap (checked against the tap's entries).
    since = rogue_at if first_in_window else tap_at
    breaks, off, full, entries = await _checked(own_db, since, rogue_at + 1)
    assert sorted((b.account_id, b.transfer_id) for b in breaks) == sorted(
        [(books["card"].id, rogue), (books["merchant"].id, rogue)]
    )
    for b in breaks:
        assert b.recorded == b.before  # recorded as if it moved nothing
        assert b.expected != b.recorded and sum(b.delta) == 50
    assert entries == (2 if first_in_window else 4)
    assert off == []  # the accounts hold what their last entry records
    assert {m.name for m in full} == {f"{ns}:card", f"{ns}:merchant"}  # the full sum sees it too
    before, _, _, _ = await _checked(own_db, 0, rogue_at)  # a window that ends before it
    assert before == []


async def test_the_nights_ledger_check_reports_a_broken_entry_of_its_day(own_db, ns):
    """Through reconciliation's ledger check: the business day holding the entries is read;
    the rogue entry is one balance_mismatch break per account, of that day; the day before
    holds none of them."""
    calendar = BusinessCalendar()
    books = await books_with_history(own_db, ns)
    rogue = await write_behind(own_db, ns, books, await last_timestamp(own_db) + 1_000)
    now = datetime.now(UTC)
    today = calendar.business_day(now)
    engine = create_async_engine(own_db)
    try:
        async with engine.connect() as conn:
            reader = LedgerReader(engine)
            found = await LedgerCheck().run(CheckContext(conn, reader, today, calendar, now))
            earlier = await LedgerCheck().run(
                CheckContext(conn, reader, today - timedelta(days=1), calendar, now)
            )
    finally:
        await engine.dispose()
    assert ledger_ns(calendar.day_start(today)) <= await last_timestamp(own_db)
    entries = [f for f in found.findings if f.key.startswith("entry:")]
    assert sorted(f.counterpart for f in entries) == [f"{ns}:card", f"{ns}:merchant"]
    assert all(
        f.kind is BreakKind.BALANCE_MISMATCH
        and f.scope is Scope.DAY
        and f.amount_fen == 50
        and f.details["transfer_id"] == f"{rogue:032x}"
        for f in entries
    )
    assert found.total - found.matched == 2
    assert [f for f in earlier.findings if f.key.startswith("entry:")] == []
    assert earlier.total == found.total - 6  # the day's 3 transfers, 2 entries each


async def test_past_the_accounts_named_a_day_that_does_not_add_up_is_one_break(
    own_db, ns, monkeypatch
):
    """Beyond ACCOUNTS_NAMED_MAX accounts the entries are not sorted to name the broken one:
    each account is one break of its day, with what its entries moved."""
    monkeypatch.setattr(ledger_check, "ACCOUNTS_NAMED_MAX", 0)
    calendar = BusinessCalendar()
    books = await books_with_history(own_db, ns)
    await write_behind(own_db, ns, books, await last_timestamp(own_db) + 1_000)
    now = datetime.now(UTC)
    engine = create_async_engine(own_db)
    try:
        async with engine.connect() as conn:
            ctx = CheckContext(
                conn, LedgerReader(engine), calendar.business_day(now), calendar, now
            )
            found = await LedgerCheck().run(ctx)
    finally:
        await engine.dispose()
    days = sorted((f for f in found.findings if f.key.startswith("day:")), key=lambda f: f.key)
    assert [f.key for f in days] == [f"day:{ns}:card", f"day:{ns}:merchant"]
    assert all(f.amount_fen == 50 and f.scope is Scope.DAY for f in days)
    # The card's day: the load's 1,000 in, the tap's 300 and the rogue's 50 out; its last entry
    # records 300 out (the rogue recorded nothing).
    assert days[0].details["moved"] == [0, 350, 0, 1_000]
    assert days[0].details["recorded"] == [0, 300, 0, 1_000]
    assert not [f for f in found.findings if f.key.startswith("entry:")]
