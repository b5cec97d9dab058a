"""An attacker who knows one rider's home stop, line and travel times tries to find that rider's
trips in everything a release publishes.

Method. Two neighbouring worlds are loaded: the same crowd of 400 commuters over four weeks, in
June with the target rider added and in August (shifted by exactly nine weeks, so weekdays line
up) without. The target boards line 5 at airport_road at 05:10 and at monastery at 21:40 on every
weekday, hours at which nobody else travels, and shares the line and the origin-destination pair
with the crowd. The attacker, with k and the budget as configured (InsightSettings defaults):
1. looks for any published cell consistent with what they know (the target's stops x hours,
   line x hours, line x days, origin-destination pairs) in the tables, the CSV files and the HTML
   report, and checks how many riders each such cell really holds (the exact counts);
2. compares the two worlds cell by cell (a differencing attack): which cells the k-rider rule
   lets through, and whether any publishable cell moves by more than the noise hides;
3. tries to link the target across releases by their pseudonymous keys.
The attack fails if: every cell the attacker can see holds at least k riders (the target hides in
a crowd of k or more), the cells only the target is in are never published anywhere, the k-rider
rule passes exactly the same cells in both worlds (what is published then differs only by noise),
the target's own contribution to any publishable cell is below the noise scale, and no card key
repeats between two releases.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from insight import report, service, synthetic
from insight.settings import InsightSettings
from tests.insight.cityfixture import NETWORK, exact_counts, release, reset

pytestmark = pytest.mark.postgres

JUNE = date(2026, 6, 1)
SHIFT = timedelta(weeks=9)
DAYS = 28
TARGET_CARD = "3199000000000001"
ZONE = ZoneInfo("Asia/Shanghai")


def _target_taps() -> list[synthetic.SynthTap]:
    taps = []
    for offset in range(DAYS):
        day = JUNE + timedelta(days=offset)
        if day.isoweekday() >= 6:
            continue
        for stop, hour, minute in (("airport_road", 5, 10), ("monastery", 21, 40)):
            at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE)
            taps.append(
                synthetic.SynthTap(TARGET_CARD, "adult", "5", stop, at.astimezone(UTC), day, False)
            )
    return taps


def _shifted(tap: synthetic.SynthTap) -> synthetic.SynthTap:
    return replace(tap, occurred_at=tap.occurred_at + SHIFT, business_day=tap.business_day + SHIFT)


@pytest.fixture(scope="module")
async def worlds(pg_url: str) -> AsyncIterator[tuple[service.Release, service.Release, dict]]:
    connection = await reset(pg_url)
    crowd, _ = synthetic.month(400, JUNE, DAYS, seed=3)
    await synthetic.load_taps(connection, crowd + _target_taps())
    await synthetic.load_taps(connection, [_shifted(t) for t in crowd])
    engine = create_async_engine(pg_url)
    june_end = JUNE + timedelta(days=DAYS - 1)
    with_target = await release(engine, JUNE, june_end)
    without = await release(engine, JUNE + SHIFT, june_end + SHIFT)
    exact = await exact_counts(engine, JUNE, june_end)
    exact_without = await exact_counts(engine, JUNE + SHIFT, june_end + SHIFT)
    await engine.dispose()
    yield with_target, without, {"with": exact, "without": exact_without}
    await reset(pg_url)
    await connection.close()


def _keys(table: service.PublishedTable, shift: timedelta = timedelta(0)) -> set[tuple]:
    out = set()
    for row in table.rows:
        key = list(row[:-1])
        if "business_day" in table.columns:
            i = table.columns.index("business_day")
            key[i] = (date.fromisoformat(key[i]) - shift).isoformat()
        out.add(tuple(key))
    return out


def _consistent_with_target(name: str, key: tuple) -> bool:
    """What the attacker knows, as a test on a cell's key."""
    if name == "stop_hour":
        return key in {("airport_road", False, 5), ("monastery", False, 21)}
    if name == "line_hour":
        return key[:3] in {("5", False, 5), ("5", False, 21)}
    if name == "line_day":
        return key[0] == "5"
    if name == "od":
        return key[:2] in {("airport_road", "monastery"), ("monastery", "airport_road")}
    return False


def _exact_cells(exact: list) -> dict[tuple, tuple[int, int]]:
    out = {}
    for row in exact:
        key = tuple(v.isoformat() if isinstance(v, date) else v for v in row[:-2])
        out[key] = (row[-2], row[-1])
    return out


async def test_every_cell_the_attacker_can_see_hides_the_target_among_k_riders(worlds) -> None:
    with_target, _, exact = worlds
    k = InsightSettings().k_riders_min
    seen_consistent = 0
    for name, table in with_target.tables.items():
        cells = _exact_cells(exact["with"][name])
        for key in _keys(table):
            _count, riders = cells[key]
            assert riders >= k, (name, key, riders)  # no published cell under k, anywhere
            seen_consistent += _consistent_with_target(name, key)
    assert seen_consistent > 0  # the attacker does find crowd cells the target is part of


async def test_the_cells_only_the_target_is_in_are_published_nowhere(
    worlds, tmp_path: Path
) -> None:
    with_target, _, exact = worlds
    lonely = {
        (name, key)
        for name, rows in exact["with"].items()
        for key, (_, riders) in _exact_cells(rows).items()
        if _consistent_with_target(name, key) and riders == 1
    }
    assert ("stop_hour", ("airport_road", False, 5)) in lonely  # the target's 05:00 boardings
    for name, key in lonely:
        assert key not in _keys(with_target.tables[name])
    written = report.write_release(with_target, NETWORK, tmp_path)
    files = {path.name: path.read_text() for path in written}
    assert "airport_road,False,5," not in files["stop_hour.csv"]
    assert "monastery,False,21," not in files["stop_hour.csv"]
    assert not re.search(r"^5,False,(5|21),", files["line_hour.csv"], re.MULTILINE)
    everything = "".join(files.values())
    assert TARGET_CARD not in everything
    assert not re.findall(r"\d{16}", everything)


async def test_a_differencing_attack_between_neighbouring_worlds_finds_nothing(worlds) -> None:
    with_target, without, exact = worlds
    k = InsightSettings().k_riders_min
    for name in with_target.tables:
        cells_with = _exact_cells(exact["with"][name])
        cells_without = {
            _unshift(name, key): value
            for key, value in _exact_cells(exact["without"][name]).items()
        }
        # The k-rider rule lets exactly the same cells through in both worlds: whether a cell
        # appears depends on the target only through the noise.
        passing_with = {key for key, (_, riders) in cells_with.items() if riders >= k}
        passing_without = {key for key, (_, riders) in cells_without.items() if riders >= k}
        assert passing_with == passing_without, name
        assert _keys(with_target.tables[name]) <= passing_with
        assert _keys(without.tables[name], SHIFT) <= passing_without
        # In every cell that can be published, what the target adds is smaller than the noise.
        scale = with_target.tables[name].noise_scale
        for key in passing_with:
            added = cells_with[key][0] - cells_without[key][0]
            assert 0 <= added < scale, (name, key, added)


def _unshift(name: str, key: tuple) -> tuple:
    if name != "line_day":
        return key
    return (key[0], (date.fromisoformat(key[1]) - SHIFT).isoformat())


async def test_card_keys_never_repeat_between_releases(worlds, pg_url: str) -> None:
    engine: AsyncEngine = create_async_engine(pg_url)
    keys = []
    try:
        for _ in range(2):
            async with engine.connect() as conn:
                await service.stage_period(
                    conn, InsightSettings(), NETWORK, JUNE, JUNE + timedelta(days=DAYS - 1)
                )
                rows = await conn.execute(text("SELECT DISTINCT rider FROM insight_rides"))
                keys.append({row[0] for row in rows})
                await conn.rollback()
    finally:
        await engine.dispose()
    assert len(keys[0]) == len(keys[1]) == 401
    assert not keys[0] & keys[1]
