"""The nights' ledger windows (reconciliation.repository.ledger_window): each run of a day reads
the ledger's entries in a window of ledger time that starts where the last reconciled day before
it ended and ends at what the ledger had committed when the run began. So the first run of all
reads the whole history, an entry posted after a day's run is read by the next night's run
whatever its hour, a re-run of a day reads what its first run read (and, for the latest day,
what was posted since), and the windows of the days reconciled never overlap nor leave a gap,
in whatever order the days are run."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from clearing.calendar import BusinessCalendar
from clearing.settings import Settings
from ledger import reader
from ledger.reader import BalanceMismatch, posted_through
from ledger.writer import Ledger
from reconciliation import repository
from reconciliation.checks.base import BreakKind
from reconciliation.checks.ledger import LedgerCheck, ledger_ns
from reconciliation.models import RunState, breaks, runs
from reconciliation.report import ledger_read
from reconciliation.run import RunSummary, run_day
from reconciliation.tasks import reconcile
from tests.ledger.helpers import (
    acct,
    books_with_history,
    last_timestamp,
    on_connection,
    write_behind,
    xfer,
)

CALENDAR = BusinessCalendar()
DAY_NS = 86_400 * 10**9


@pytest.fixture(params=["sqlite", "postgresql"])
def own_db(request: pytest.FixtureRequest) -> str:
    """A database of this test's own: the runs and the ledger start empty."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "fresh_pg_url")


async def _night(
    url: str, day: date, *, sweep: bool = False
) -> tuple[RunSummary, tuple[int, int], list[str]]:
    """A reconciliation run of `day` with the ledger check alone, committed: its summary, the
    window it recorded, and the keys of the balance mismatches it found."""

    async def run(conn: AsyncConnection) -> RunSummary:
        return await run_day(
            conn, day, calendar=CALENDAR, checks=[LedgerCheck()], sweep_accounts=sweep
        )

    summary = await on_connection(url, run, begin=True)

    async def read(conn: AsyncConnection) -> tuple[tuple[int, int], list[str]]:
        window = select(runs.c.ledger_since_ns, runs.c.ledger_until_ns)
        since, until = (await conn.execute(window.where(runs.c.id == summary.run_id))).one()
        found = await conn.execute(
            select(breaks.c.key).where(
                breaks.c.kind == BreakKind.BALANCE_MISMATCH.value,
                breaks.c.last_run_id == summary.run_id,
            )
        )
        return (since, until), sorted(found.scalars())

    window, found = await on_connection(url, read)
    return summary, window, found


async def _open_keys(url: str) -> list[str]:
    async def read(conn: AsyncConnection) -> list[str]:
        rows = await conn.execute(select(breaks.c.key, breaks.c.status))
        return sorted(key for key, status in rows if status in ("open", "assigned"))

    return await on_connection(url, read)


async def _post_later(url: str, ns: str) -> None:
    """A load bank -> card2 through the ledger, now: the clock passes what was written behind."""
    async with await Ledger.open(url) as led:
        [result] = await led.create_transfers(
            [xfer(ns, "later", acct(ns, "bank"), acct(ns, "card2"), 70)]
        )
        assert result.value == "ok"


def _rogue_keys(ns: str, rogue: int) -> list[str]:
    return sorted(f"entry:{rogue:032x}:{ns}:{name}" for name in ("card", "merchant"))


async def test_the_first_run_of_all_reads_the_whole_history(own_db, ns):
    """Entries posted three days before the day reconciled, one of them written behind the
    ledger: the first run reads them (a window of the day's own hours would not)."""
    days_ago = time.time_ns() - 3 * DAY_NS
    books = await books_with_history(own_db, ns, clock_ns=lambda: days_ago)
    rogue = await write_behind(own_db, ns, books, await last_timestamp(own_db) + 1_000)
    await _post_later(own_db, ns)
    today = CALENDAR.business_day(datetime.now(UTC))
    summary, window, found = await _night(own_db, today)
    assert window == (0, await last_timestamp(own_db) + 1)
    assert found == _rogue_keys(ns, rogue)
    [ledger] = summary.checks
    # Every entry: the load, the tap, the rogue one and the later load, two each.
    assert ledger.total - ledger.matched == 2 and ledger.breaks == 2
    assert ledger.total >= 8


async def test_what_is_posted_after_a_run_is_read_by_the_next_night(own_db, ns):
    """Today's run, then an entry written behind the ledger and a transfer, still today: the
    next day's run reads them (its window starts where today's ended, not at its own day's
    start); a re-run of today reads today's first window again and leaves the next day's break
    open."""
    books = await books_with_history(own_db, ns)
    today = CALENDAR.business_day(datetime.now(UTC))
    first, window, found = await _night(own_db, today)
    assert found == [] and window[0] == 0
    rogue = await write_behind(own_db, ns, books, await last_timestamp(own_db) + 1_000)
    await _post_later(own_db, ns)
    _, next_window, next_found = await _night(own_db, today + timedelta(days=1))
    assert next_window == (window[1], await last_timestamp(own_db) + 1)
    assert next_found == _rogue_keys(ns, rogue)
    _, again_window, again_found = await _night(own_db, today)
    assert again_window == window
    assert again_found == []
    assert await _open_keys(own_db) == _rogue_keys(ns, rogue)


async def test_a_rerun_of_the_latest_day_reads_what_was_posted_since(own_db, ns):
    """A day's run, an entry written behind the ledger after it, a re-run of the same day: the
    re-run's window starts where the first did and ends past what was posted since."""
    books = await books_with_history(own_db, ns)
    today = CALENDAR.business_day(datetime.now(UTC))
    _, window, _ = await _night(own_db, today)
    rogue = await write_behind(own_db, ns, books, await last_timestamp(own_db) + 1_000)
    await _post_later(own_db, ns)
    _, again, found = await _night(own_db, today)
    assert again == (window[0], await last_timestamp(own_db) + 1)
    assert found == _rogue_keys(ns, rogue)


async def test_the_window_ends_at_what_the_ledger_committed(own_db, ns):
    """posted_through is the clock's last reservation: every transfer at or before it is
    stored; nothing stored is after it."""
    assert await _posted(own_db) == 0
    await books_with_history(own_db, ns)
    assert await _posted(own_db) == await last_timestamp(own_db)


async def _posted(url: str) -> int:
    return await on_connection(url, posted_through)


# One step: the ledger posts (its clock moves on by 1..1,000), or a run of day 0..4 that
# finishes, or one that fails (its row stays `failed` and sets no bound).
_STEP = st.one_of(
    st.tuples(st.just("post"), st.integers(1, 1_000)),
    st.tuples(st.just("run"), st.integers(0, 4)),
    st.tuples(st.just("fail"), st.integers(0, 4)),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(_STEP, min_size=1, max_size=14))
def test_the_days_windows_chain_in_any_order(sqlite_url, steps):
    """Whatever the order the days are run and re-run in: each day's latest window holds its
    earlier ones, the latest windows of the days never overlap, together they cover ledger time
    from 0 to the furthest one without a gap, and none reaches past what was committed when it
    ran (the model: the ledger's clock)."""
    asyncio.run(_chain(sqlite_url, steps))


async def _chain(url: str, steps: list[tuple[str, int]]) -> None:
    engine = create_async_engine(url)
    base = date(2026, 11, 1)
    clock = 0
    latest: dict[int, tuple[int, int]] = {}
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM recon_runs"))
        for kind, value in steps:
            if kind == "post":
                clock += value
                continue
            async with engine.begin() as conn:
                since, until = await repository.ledger_window(
                    conn, base + timedelta(days=value), clock, 10**18
                )
                assert 0 <= since <= until <= clock + 1
                run_id = await repository.start_run(
                    conn, base + timedelta(days=value), "test", datetime.now(UTC), (since, until)
                )
                if kind == "fail":
                    await conn.execute(
                        update(runs).where(runs.c.id == run_id).values(state=RunState.FAILED.value)
                    )
                    continue
                await repository.finish_run(conn, run_id, datetime.now(UTC))
            earlier = latest.get(value)
            if earlier is not None and earlier[0] < earlier[1]:
                assert since <= earlier[0] and earlier[1] <= until  # holds what it read before
            latest[value] = (since, until)
    finally:
        await engine.dispose()
    spans = sorted(w for w in latest.values() if w[0] < w[1])
    reach = 0
    for since, until in spans:
        assert since == reach  # no gap, no overlap
        reach = until
    assert reach == max((w[1] for w in latest.values()), default=0) or not spans


async def _change_behind(url: str, name: str, by: int) -> None:
    """The stored credits of the account `name` changed straight in the table."""
    change = text(
        "UPDATE ledger_accounts SET credits_posted = credits_posted + :by WHERE name = :name"
    )

    async def write(conn: AsyncConnection) -> None:
        await conn.execute(change, {"by": by, "name": name})

    await on_connection(url, write, begin=True)


async def test_an_account_off_its_last_entry_stays_a_break_until_it_is_put_right(own_db, ns):
    """The merchant's stored balance changed behind the ledger: today's run finds it (its tap is
    in the window). The next nights' windows hold no entry of the merchant, yet its break stays
    open while the balance is off, and the night after it is put right closes it."""
    await books_with_history(own_db, ns)
    await _change_behind(own_db, f"{ns}:merchant", 1)
    today = CALENDAR.business_day(datetime.now(UTC))
    _, _, found = await _night(own_db, today)
    assert found == [f"{ns}:merchant"]
    await _post_later(own_db, ns)  # entries of the bank and card2 only
    _, _, found = await _night(own_db, today + timedelta(days=1))
    assert found == [f"{ns}:merchant"]
    # (The change unbalanced the ledger too: a standing break of its own.)
    assert set(await _open_keys(own_db)) == {f"{ns}:merchant", "ledger:1"}
    await _change_behind(own_db, f"{ns}:merchant", -1)
    summary, _, found = await _night(own_db, today + timedelta(days=2))
    assert found == [] and summary.closed == 2
    assert await _open_keys(own_db) == []


async def test_the_sweep_finds_an_account_no_entry_touched(own_db, ns, tmp_path):
    """card2 has no entry; its stored balance changed behind the ledger is not read by a night
    that reads its window only, and is found by the sweep of every account, which the beat's
    run does on the night of recon_sweep_weekday."""
    await books_with_history(own_db, ns)
    await _change_behind(own_db, f"{ns}:card2", 5)
    today = CALENDAR.business_day(datetime.now(UTC))
    summary, _, found = await _night(own_db, today)
    assert found == [] and not summary.accounts_swept
    settings = Settings(
        database_url=own_db,
        data_dir=tmp_path,
        business_time_zone=CALENDAR.time_zone.key,
        settlement_cutoff=CALENDAR.cutoff.strftime("%H:%M"),
        recon_sweep_weekday=(today.weekday() + 1) % 7,
    )
    later = today + timedelta(days=1)
    swept = await reconcile(settings, later, trigger="beat")
    assert swept.accounts_swept
    stored = await on_connection(
        own_db,
        lambda c: repository.breaks_by_key(c, BreakKind.BALANCE_MISMATCH.value, [f"{ns}:card2"]),
    )
    assert stored[f"{ns}:card2"]["amount_fen"] == 5
    not_sweeping = settings.model_copy(update={"recon_sweep_weekday": -1})
    assert not (await reconcile(not_sweeping, later, trigger="beat")).accounts_swept
    # The break stays open on a night that does not sweep: its account is looked at again.
    assert f"{ns}:card2" in await _open_keys(own_db)


async def test_the_sweep_reads_every_account_page_after_page(own_db, ns, monkeypatch):
    """stale_balances_all pages through the accounts by id: with one account a statement, every
    account changed behind the ledger is found, each once, in id order."""
    monkeypatch.setattr(reader, "ACCOUNTS_PER_STATEMENT", 1)
    books = await books_with_history(own_db, ns)

    async def change(conn: AsyncConnection) -> None:  # both sides: every account's flags hold
        await conn.execute(
            text(
                "UPDATE ledger_accounts SET debits_posted = debits_posted + 2,"
                " credits_posted = credits_posted + 2"
            )
        )

    async def sweep(conn: AsyncConnection) -> list[BalanceMismatch]:
        return [m async for m in reader.stale_balances_all(conn)]

    await on_connection(own_db, change, begin=True)
    found = await on_connection(own_db, sweep)
    assert [m.account_id for m in found] == sorted(a.id for a in books.values())
    skip = {books["card"].id, books["merchant"].id}  # already judged by the night's window

    async def rest(conn: AsyncConnection) -> list[BalanceMismatch]:
        return [m async for m in reader.stale_balances_all(conn, skip)]

    left = await on_connection(own_db, rest)
    assert [m.account_id for m in left] == sorted(a.id for a in books.values() if a.id not in skip)
    assert all(m.stored[1] == m.summed[1] + 2 and m.stored[3] == m.summed[3] + 2 for m in found)


async def test_after_the_upgrade_the_first_window_starts_at_its_day(own_db, ns):
    """Days reconciled before runs kept their windows (migration 0014) each read their own
    day's hours: the first run after the upgrade starts at its day's start, not at 0 (a city's
    whole history at once); a ledger with no earlier run at all is read from 0."""
    await books_with_history(own_db, ns)
    today = CALENDAR.business_day(datetime.now(UTC))

    async def old_run(conn: AsyncConnection) -> None:
        run_id = await repository.start_run(
            conn, today - timedelta(days=1), "cli", datetime.now(UTC)
        )
        await repository.finish_run(conn, run_id, datetime.now(UTC))

    await on_connection(own_db, old_run, begin=True)
    _, window, _ = await _night(own_db, today)
    assert window == (ledger_ns(CALENDAR.day_start(today)), await last_timestamp(own_db) + 1)


async def test_the_sweep_reports_an_account_the_window_judged_once(own_db, ns):
    """The merchant, off its last entry and touched by the night's window, is one break of
    the sweep's night, not one from the window and one from the sweep."""
    await books_with_history(own_db, ns)
    await _change_behind(own_db, f"{ns}:merchant", 1)
    summary, _, found = await _night(own_db, CALENDAR.business_day(datetime.now(UTC)), sweep=True)
    assert found == [f"{ns}:merchant"] and summary.accounts_swept
    [ledger] = summary.checks
    assert ledger.breaks == 2  # the merchant, and the ledger its change unbalanced


def test_a_run_says_which_entries_it_read():
    """The words `onecard reconcile` and the day's report use for a run's window."""
    day = CALENDAR.day_start(date(2026, 12, 6))
    start = ledger_ns(day)
    none = "ledger entries read: none (nothing was posted in the run's window)"
    assert ledger_read(0, 1) == none and ledger_read(start, start) == none
    assert ledger_read(0, start + 10**9) == (
        f"ledger entries read: every one up to {day + timedelta(seconds=1):%Y-%m-%d %H:%M:%S} UTC"
    )
    assert ledger_read(start, start + 1).startswith(
        f"ledger entries read: those posted from {day:%Y-%m-%d %H:%M:%S} UTC"
    )
    assert ledger_read(None, None) == ""  # a run from before migration 0014
