"""A synthetic month with known ridership and journeys: what a release publishes recovers the
truth within the stated error, the SQL chains trips exactly as the pure rules do, the forecast
beats the seasonal-naive baseline, and the budget ledger refuses to overspend."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from insight import analysis, chaining, privacy, report, service, synthetic
from insight.errors import BudgetExhausted, PeriodInvalid
from insight.settings import InsightSettings
from tests.insight.cityfixture import NETWORK, exact_counts, release, reset

pytestmark = pytest.mark.postgres

START = date(2026, 10, 1)
DAYS = 30
END = START + timedelta(days=DAYS - 1)
RIDERS = 3000


@pytest.fixture(scope="module")
async def city(pg_url: str) -> AsyncIterator[tuple[list[synthetic.SynthTap], synthetic.Truth]]:
    connection = await reset(pg_url)
    taps, truth = synthetic.month(RIDERS, START, DAYS, seed=1)
    await synthetic.load_taps(connection, taps)
    yield taps, truth
    await reset(pg_url)
    await connection.close()


@pytest.fixture(scope="module")
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    made = create_async_engine(pg_url)
    yield made
    await made.dispose()


@pytest.fixture(scope="module")
async def made(city, engine) -> service.Release:
    """One release of the month (rolled back: it spends no budget of the database)."""
    return await release(engine, START, END)


@pytest.fixture(scope="module")
async def exact(city, engine) -> dict[str, list]:
    """The month's cells before privacy."""
    return await exact_counts(engine, START, END)


async def test_boardings_per_line_and_day_recover_the_truth(city, made) -> None:
    _, truth = city
    table = made.tables["line_day"]
    plan = privacy.NoisePlan(table.epsilon, made.taps_per_rider_day_max, table.noise_scale)
    published = {(r, date.fromisoformat(d)): c for r, d, c in table.rows}
    assert set(published) == set(truth.boardings_line_day)  # every line-day has >= k riders
    errors = [abs(published[key] - true) for key, true in truth.boardings_line_day.items()]
    # Stated error: no cell off by more than the noise's one-in-a-million tail, and the mean
    # absolute error that of the Laplace noise alone (its scale), with 50 % slack.
    assert max(errors) <= privacy.tail_bound(plan, 1e-6)
    assert sum(errors) / len(errors) <= 1.5 * table.noise_scale
    for route in synthetic.LINES:
        true_total = sum(c for (r, _), c in truth.boardings_line_day.items() if r == route)
        total = sum(c for (r, _), c in published.items() if r == route)
        assert abs(total - true_total) <= 0.05 * true_total


async def test_journeys_recover_the_true_origin_destination_flows(city, exact, made) -> None:
    _, truth = city
    od_exact: Counter[tuple[str, str]] = Counter()
    for origin, destination, _card_type, count, _riders in exact["od"]:
        od_exact[(origin, destination)] += count
    assert od_exact == truth.trips_od  # chaining is exact on this city: only noise remains
    published: Counter[tuple[str, str]] = Counter()
    for origin, destination, _card_type, count in made.tables["od"].rows:
        published[(origin, destination)] += count
    for pair, true in truth.trips_od.items():
        assert abs(published[pair] - true) <= 0.05 * true, pair
    share = analysis.inferred_share(made)
    assert share is not None
    assert abs(share - truth.trips_inferable / truth.trips) <= 0.01


async def test_sql_chaining_matches_the_pure_rules(city, exact) -> None:
    taps, _ = city
    days: dict[tuple[str, date], list[synthetic.SynthTap]] = defaultdict(list)
    served: dict[str, set[str]] = defaultdict(set)
    for tap in taps:
        days[(tap.card_no, tap.business_day)].append(tap)
        served[tap.route_id].add(tap.stop_id)
    alight = chaining.alight_table(
        {r: frozenset(s) for r, s in served.items()}, NETWORK.stops, InsightSettings().walk_m_max
    )
    expected: Counter[tuple[str, str, str]] = Counter()
    for day in days.values():
        day.sort(key=lambda t: t.occurred_at)
        boardings = [chaining.Boarding(t.route_id, t.stop_id, t.occurred_at) for t in day]
        for tap, destination in zip(day, chaining.destinations(boardings, alight), strict=True):
            if destination is not None:
                expected[(tap.stop_id, destination, tap.card_type)] += 1
    assert {(o, d, t): c for o, d, t, c, _ in exact["od"]} == dict(expected)


async def test_transfers_between_lines_are_counted_from_the_fare_engines_records(
    city, exact, made
) -> None:
    taps, _ = city
    true: Counter[tuple[str, str]] = Counter()
    last_route: dict[tuple[str, date], str] = {}
    for tap in sorted(taps, key=lambda t: t.occurred_at):
        key = (tap.card_no, tap.business_day)
        if tap.transfer:
            true[(last_route[key], tap.route_id)] += 1
        last_route[key] = tap.route_id
    assert {(a, b): c for a, b, c, _ in exact["transfers"]} == dict(true)
    for a, b, count in made.tables["transfers"].rows:
        assert abs(count - true[(a, b)]) <= 0.05 * true[(a, b)]


async def test_the_forecast_beats_seasonal_naive_on_held_out_weeks(made) -> None:
    lines = analysis.outlooks(made)
    assert {line.route_id for line in lines} == set(synthetic.LINES)
    checks = [line.backtest for line in lines if line.backtest is not None]
    assert len(checks) == len(synthetic.LINES)
    assert sum(c.mae_forecast for c in checks) < sum(c.mae_naive for c in checks)
    assert all(len(line.forecast) == 7 for line in lines)
    grower = next(line for line in lines if line.route_id == synthetic.GROWING_LINE)
    assert grower.weekly_change > 0


async def test_a_release_of_the_same_month_and_seed_publishes_the_same_numbers(
    city, engine, made
) -> None:
    """What the assertions above read is the same in every run: the test releases' noise is
    seeded (OpenDP's is not) and each cell gets its draw in key order, not in SQL's."""
    again = await release(engine, START, END)
    assert again.tables == made.tables
    other = await release(engine, START, END, seed=1)
    assert other.tables["line_day"].rows != made.tables["line_day"].rows  # the noise is there


async def test_a_release_past_the_daily_budget_cap_is_refused(city, engine) -> None:
    settings = InsightSettings(epsilon_per_release=1.0, epsilon_per_day_max=2.0)
    week_end = START + timedelta(days=6)
    async with engine.connect() as conn:
        for _ in range(2):
            await service.build_release(conn, settings, NETWORK, START, week_end, created_by="t")
        with pytest.raises(BudgetExhausted):
            await service.build_release(
                conn, settings, NETWORK, week_end, week_end + timedelta(days=3), created_by="t"
            )
        # Days no release covered yet still have their whole budget.
        await service.build_release(
            conn,
            settings,
            NETWORK,
            week_end + timedelta(days=1),
            week_end + timedelta(days=3),
            created_by="t",
        )
        ledger = await service.budget_ledger(conn)
        assert [row["epsilon"] for row in ledger] == [1.0, 1.0, 1.0]
        assert all("published" not in row for row in ledger)
        await conn.rollback()


async def test_a_stored_release_reads_back_as_published(city, engine) -> None:
    async with engine.connect() as conn:
        made = await service.build_release(
            conn, InsightSettings(), NETWORK, START, START + timedelta(days=6), created_by="t"
        )
        again = await service.load_release(conn, made.id)
        await conn.rollback()
    assert again.tables == made.tables


async def test_a_period_backwards_or_too_long_is_refused(engine) -> None:
    async with engine.connect() as conn:
        with pytest.raises(PeriodInvalid):
            await service.build_release(
                conn, InsightSettings(), NETWORK, END, START, created_by="t"
            )
        with pytest.raises(PeriodInvalid):
            await service.build_release(
                conn, InsightSettings(), NETWORK, START, START + timedelta(days=200), created_by="t"
            )
        await conn.rollback()


async def test_files_and_report_carry_no_card_number_and_load_nothing_from_outside(
    city, made, tmp_path: Path
) -> None:
    taps, _ = city
    written = report.write_release(made, NETWORK, tmp_path)
    names = {path.name for path in written}
    assert {"line_day.csv", "od.csv", "transfers.csv", "forecast.csv", "report.html"} <= names
    text = "".join(path.read_text() for path in written)
    cards = {tap.card_no for tap in taps}
    assert not cards & set(re.findall(r"\d{16}", text))
    html = (tmp_path / "report.html").read_text()
    assert "<svg" in html and "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
