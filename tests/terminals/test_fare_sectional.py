"""Two-tap sectional fares (terminals.fares.sectional) over generated zone tariffs, with the card
state carried between the taps through the real CAPP record bytes (terminals.capp)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terminals.capp import TapPlace, decode_transit_record, encode_transit_record
from terminals.errors import FeedInvalid
from terminals.fares.engine import EMPTY_STATE, RideState
from terminals.fares.feed import FareFeed, load_feed, parse_feed, read_feed
from terminals.fares.feed_files import read_feed_files
from terminals.fares.sectional import StepKind, plan_tap

SECTIONAL = Path(__file__).parent / "feeds" / "sectional"
STOPS = ("s1", "s2", "s3", "s4", "s5", "s6")
ZONE = {"s1": 0, "s2": 0, "s3": 1, "s4": 1, "s5": 2, "s6": 2}
START = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # 09:00 in Beijing, a Monday
TERMINAL = bytes.fromhex("000001000050")


def zone_feed(prices: list[list[int]]) -> FareFeed:
    """The sectional feed with zone i -> zone j costing prices[i][j] fen on line 900."""
    files = read_feed_files(SECTIONAL)
    for schedule in ("trips.txt", "stop_times.txt"):  # 901 serves s1..s4 only (zones 0, 1)
        files[schedule] = (SECTIONAL / schedule).read_text()
    products = ["fare_product_id,amount,currency", "flat,2.00,CNY"]
    rules = ["leg_group_id,network_id,from_area_id,to_area_id,fare_product_id,rule_priority"]
    for i, row in enumerate(prices):
        for j, fen in enumerate(row):
            products.append(f"p{i}{j},{fen / 100:.2f},CNY")
            rules.append(f"express,express,z{i + 1},z{j + 1},p{i}{j},0")
    rules.append("urban,urban,,,flat,0")
    files["fare_products.txt"] = "\n".join(products) + "\n"
    files["fare_leg_rules.txt"] = "\n".join(rules) + "\n"
    files.pop("x_fare_caps.txt")
    return parse_feed(files)


def through_card(feed: FareFeed, state: RideState, route: str, stop: str, fare: int) -> RideState:
    """What the next validator reads back after this state was written with a debit."""
    raw = encode_transit_record(state, TapPlace(route, stop, TERMINAL, fare))
    return decode_transit_record(raw, feed)


def tap(feed: FareFeed, state: RideState, route: str, stop: str, now: datetime):
    steps = plan_tap(feed, "adult", state, route, stop, now)
    for step in steps:
        state = through_card(feed, step.quote.state, route, stop, step.fare_fen)
    return steps, state


prices_strategy = st.lists(
    st.lists(st.integers(min_value=0, max_value=2000), min_size=3, max_size=3),
    min_size=3,
    max_size=3,
)


@settings(max_examples=60, deadline=None)
@given(
    prices=prices_strategy,
    board=st.sampled_from(STOPS),
    alight=st.sampled_from(STOPS),
    start_min=st.integers(min_value=0, max_value=20 * 60),
    ride_min=st.integers(min_value=3, max_value=180),
)
def test_a_two_tap_leg_costs_the_rule_of_its_two_stops(prices, board, alight, start_min, ride_min):
    feed = zone_feed(prices)
    boarded_at = START + timedelta(minutes=start_min)
    on, state = tap(feed, EMPTY_STATE, "900", board, boarded_at)
    assert [s.kind for s in on] == [StepKind.BOARD] and on[0].fare_fen == 0
    assert state.open_leg is not None and state.open_leg.board_stop_id == board
    assert state.open_leg.max_fare_fen == max(prices[ZONE[board]])
    off, state = tap(feed, state, "900", alight, boarded_at + timedelta(minutes=ride_min))
    assert [s.kind for s in off] == [StepKind.ALIGHT]
    assert off[0].fare_fen == prices[ZONE[board]][ZONE[alight]]
    assert state.open_leg is None


SERVED = {"900": STOPS, "901": ("s1", "s2", "s3", "s4")}


@settings(max_examples=60, deadline=None)
@given(
    prices=prices_strategy,
    route=st.sampled_from(sorted(SERVED)),
    board=st.sampled_from(SERVED["901"]),
    next_route=st.sampled_from(["1", "900"]),
    later_min=st.integers(min_value=1, max_value=2 * 24 * 60),
)
def test_a_forgotten_tap_off_costs_the_lines_maximum_and_never_more(
    prices, route, board, next_route, later_min
):
    feed = zone_feed(prices)
    _, state = tap(feed, EMPTY_STATE, route, board, START)
    later = START + timedelta(minutes=later_min)
    window = timedelta(seconds=feed.open_leg_window_s(route))
    if next_route == route and later - START <= window:
        later = START + window + timedelta(minutes=later_min)  # same line, long after
    steps, state = tap(feed, state, next_route, "s3", later)
    assert steps[0].kind is StepKind.UNFINISHED
    assert (steps[0].route_id, steps[0].stop_id) == (route, board)  # that line's operator is paid
    # The maximum over the zones that route reaches: 901 never goes beyond zone 1.
    reached = [prices[ZONE[board]][ZONE[stop]] for stop in SERVED[route]]
    assert steps[0].fare_fen == max(reached)
    # ... and never more than tapping off anywhere on that route would have cost.
    for stop in SERVED[route]:
        off, _ = tap(
            feed,
            tap(feed, EMPTY_STATE, route, board, START)[1],
            route,
            stop,
            START + timedelta(minutes=30),
        )
        assert off[-1].kind in (StepKind.ALIGHT, StepKind.ON_BOARD)
        assert off[-1].fare_fen <= steps[0].fare_fen
    assert steps[1].kind is (StepKind.BOARD if next_route == "900" else StepKind.LEG)


def test_a_second_tap_at_the_boarding_stop_is_already_on_board():
    feed = load_feed(SECTIONAL)
    _, state = tap(feed, EMPTY_STATE, "900", "s1", START)
    steps, again = tap(feed, state, "900", "s1", START + timedelta(seconds=40))
    assert [s.kind for s in steps] == [StepKind.ON_BOARD] and steps[0].fare_fen == 0
    assert again.open_leg == state.open_leg


def test_transfers_and_caps_work_across_two_tap_legs():
    feed = load_feed(SECTIONAL)
    now = START
    paid = []
    state = EMPTY_STATE
    # 900 s1 -> s5 (4.00), then urban line 1 within 90 minutes of alighting: free transfer.
    for route, stop, minutes in (("900", "s1", 0), ("900", "s5", 40), ("1", "s5", 60)):
        steps, state = tap(feed, state, route, stop, now + timedelta(minutes=minutes))
        paid += [s.fare_fen for s in steps]
    assert paid == [0, 400, 0]
    # Two more long rides the same day: the day cap (9.00) stops the second one at 5.00 paid.
    for route, stop, minutes in (("900", "s6", 200), ("900", "s1", 240)):
        steps, state = tap(feed, state, route, stop, now + timedelta(minutes=minutes))
        paid += [s.fare_fen for s in steps]
    for route, stop, minutes in (("900", "s5", 300), ("900", "s2", 330)):
        steps, state = tap(feed, state, route, stop, now + timedelta(minutes=minutes))
        paid += [s.fare_fen for s in steps]
    assert paid == [0, 400, 0, 0, 400, 0, 100]
    assert sum(paid) == 900


def test_an_alighting_rule_on_a_network_not_marked_tap_on_off_is_unusable_and_skippable():
    files = read_feed_files(SECTIONAL)
    files["onecard_networks.txt"] = "network_id,tap_mode\nurban,tap_on\n"
    with pytest.raises(FeedInvalid) as refused:
        parse_feed(files)
    problems = refused.value.problems
    assert len(problems) == 9 and all(p.unusable for p in problems)
    assert "onecard_networks.txt" in problems[0].message
    feed = parse_feed(files, skip_unusable_rules=True)
    assert [r.network_id for r in feed.leg_rules] == ["urban"]


def test_the_sectional_feed_notices_its_unknown_columns_once_each():
    loaded = read_feed(SECTIONAL)
    assert [(n.file, n.field) for n in loaded.notices] == [
        ("routes.txt", "x_depot"),
        ("stops.txt", "x_shelter"),
    ]
    assert loaded.feed.tap_off_networks == frozenset({"express"})
