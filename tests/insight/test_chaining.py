"""Trip chaining rules (insight.chaining) checked on generated rider-days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from insight.chaining import Boarding, alight_stop, alight_table, destinations, distance_m

# A small grid of stops ~550 m apart (0.005 degrees of latitude).
COORDS = {f"s{i}{j}": (29.60 + 0.005 * i, 91.10 + 0.005 * j) for i in range(4) for j in range(4)}
STOPS = sorted(COORDS)
ROUTES = ("r1", "r2", "r3")


def _day(legs: list[tuple[str, str]]) -> list[Boarding]:
    start = datetime(2026, 10, 1, 7, tzinfo=UTC)
    return [Boarding(r, s, start + timedelta(hours=i)) for i, (r, s) in enumerate(legs)]


route_stops = st.fixed_dictionaries(
    {r: st.frozensets(st.sampled_from(STOPS), min_size=1, max_size=8) for r in ROUTES}
)
rider_days = st.lists(st.tuples(st.sampled_from(ROUTES), st.sampled_from(STOPS)), max_size=8)


@given(served=route_stops, legs=rider_days, walk=st.sampled_from([0, 300, 600, 1200]))
def test_a_destination_is_a_stop_of_the_line_near_the_next_boarding_never_the_origin(
    served: dict[str, frozenset[str]], legs: list[tuple[str, str]], walk: int
) -> None:
    day = _day(legs)
    table = alight_table(served, COORDS, walk)
    found = destinations(day, table)
    assert len(found) == len(day)
    for index, (boarding, destination) in enumerate(zip(day, found, strict=True)):
        if destination is None:
            continue
        target = day[index + 1].stop_id if index + 1 < len(day) else day[0].stop_id
        assert destination in served[boarding.route_id]
        assert destination != boarding.stop_id
        assert distance_m(COORDS[destination], COORDS[target]) <= walk


@given(served=route_stops, legs=rider_days)
def test_the_next_boarding_stop_is_the_destination_when_the_line_serves_it(
    served: dict[str, frozenset[str]], legs: list[tuple[str, str]]
) -> None:
    day = _day(legs)
    found = destinations(day, alight_table(served, COORDS, 600))
    for index, boarding in enumerate(day):
        target = day[index + 1].stop_id if index + 1 < len(day) else day[0].stop_id
        if target in served[boarding.route_id] and target != boarding.stop_id:
            assert found[index] == target


def test_a_one_trip_day_has_no_destination() -> None:
    served = {"r1": frozenset(STOPS)}
    assert destinations(_day([("r1", "s00")]), alight_table(served, COORDS, 5000)) == [None]


def test_the_last_trip_returns_to_the_first_stop_and_walks_at_most_the_limit() -> None:
    # r1 serves s00 and s30 (1.67 km apart); r2 serves s31 and s01.
    served = {"r1": frozenset({"s00", "s30"}), "r2": frozenset({"s31", "s01"})}
    day = _day([("r1", "s00"), ("r2", "s31")])
    # The morning trip alights at s30, 480 m from the transfer stop s31; the evening trip ends
    # at s01, 480 m from home (s00).
    assert destinations(day, alight_table(served, COORDS, 600)) == ["s30", "s01"]
    assert destinations(day, alight_table(served, COORDS, 300)) == [None, None]


def test_the_nearest_stop_wins_and_ties_go_to_the_smaller_id() -> None:
    assert alight_stop({"s02", "s00"}, "s01", COORDS, 1000) == "s00"
    assert alight_stop({"s03", "s02"}, "s00", COORDS, 2000) == "s02"
    assert alight_stop({"s00"}, "unknown", COORDS, 2000) is None
