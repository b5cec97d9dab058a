"""Hypothesis properties of the fare engine over generated tariffs and days of taps."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from terminals.fares.engine import EMPTY_STATE, Leg, price_tap
from terminals.fares.feed import load_sample_feed

from .fares_helpers import at, feed

ROUTES = ("b1", "b2", "m1", "x1")
STOPS = ("s1", "s2", "s3", "ap")


@st.composite
def tariffs(draw):
    fen = st.integers(min_value=0, max_value=1000)
    bus, metro = draw(fen), draw(fen)
    transfer_amount = draw(st.integers(min_value=-800, max_value=800))
    transfer_type = draw(st.integers(min_value=0, max_value=2))
    limit_min = draw(st.integers(min_value=1, max_value=180))
    limit_type = draw(st.integers(min_value=0, max_value=3))
    count = draw(st.sampled_from([-1, 1, 2, 3]))
    cap = draw(st.integers(min_value=0, max_value=2000))
    student_cap = draw(st.integers(min_value=0, max_value=1000))
    with_product = draw(st.booleans())
    product_cell = "xfer" if with_product else ""
    files = dict(
        fare_products=(
            "fare_product_id,rider_category_id,amount,currency\n"
            f"bus_fare,adult,{bus / 100:.2f},CNY\n"
            f"bus_fare,student,{bus // 2 / 100:.2f},CNY\n"
            "bus_fare,senior,0,CNY\n"
            f"metro_fare,,{metro / 100:.2f},CNY\n"
            f"xfer,,{transfer_amount / 100:.2f},CNY\n"
        ),
        fare_leg_rules=(
            "leg_group_id,network_id,fare_product_id\n"
            "bus,bus,bus_fare\nmetro,metro,metro_fare\nbus,express,bus_fare\n"
        ),
        fare_transfer_rules=(
            "from_leg_group_id,to_leg_group_id,transfer_count,duration_limit,"
            "duration_limit_type,fare_transfer_type,fare_product_id\n"
            f"bus,bus,{count},{limit_min * 60},{limit_type},{transfer_type},{product_cell}\n"
            f"bus,metro,,{limit_min * 60},{limit_type},{transfer_type},{product_cell}\n"
            f"metro,,,{limit_min * 60},{limit_type},{transfer_type},{product_cell}\n"
        ),
        x_fare_caps=(
            "cap_id,rider_category_id,network_id,period,amount,currency\n"
            f"adult_day,adult,,day,{cap / 100:.2f},CNY\n"
            f"student_day,student,,day,{student_cap / 100:.2f},CNY\n"
        ),
    )
    return feed(**files), (limit_min * 60, limit_type), {"adult": cap, "student": student_cap}


@st.composite
def days_of_taps(draw):
    size = draw(st.integers(min_value=1, max_value=12))
    minutes = sorted(draw(st.lists(st.integers(0, 47 * 60), min_size=size, max_size=size)))
    legs = []
    for m in minutes:
        route = draw(st.sampled_from(ROUTES))
        board = at(0) + timedelta(minutes=m)
        if route == "m1" and draw(st.booleans()):  # metro validates on exit too
            ride_min = draw(st.integers(1, 90))
            legs.append(
                Leg(
                    route,
                    draw(st.sampled_from(STOPS)),
                    board,
                    "s2",
                    board + timedelta(minutes=ride_min),
                )
            )
        else:
            legs.append(Leg(route, draw(st.sampled_from(STOPS)), board))
    return legs


CARD_TYPES = st.sampled_from(["adult", "student", "senior"])


@settings(max_examples=150, deadline=None)
@given(tariffs(), days_of_taps(), CARD_TYPES)
def test_a_fare_and_a_full_fare_are_never_negative(tariff, legs, card_type):
    # A concession tap may cost more than the adult's same tap (the caps differ): its full fare
    # is still the adult's, and clearing claims no subsidy for it (full - fare <= 0).
    fare_feed, _, _ = tariff
    state = EMPTY_STATE
    for leg in legs:
        quote = price_tap(fare_feed, card_type, state, leg)
        assert quote.fare_fen >= 0 and quote.full_fare_fen >= 0
        state = quote.state


@settings(max_examples=200, deadline=None)
@given(tariffs(), days_of_taps(), st.sampled_from(["student", "senior"]))
def test_a_concession_cards_full_fares_are_what_an_adult_card_pays(tariff, legs, card_type):
    """For any taps, the concession card's full_fare sequence is the adult card's fare
    sequence (transfer windows, transfer counts and caps of the adult's own)."""
    fare_feed, _, _ = tariff
    concession = adult = EMPTY_STATE
    full_fares, adult_fares = [], []
    for leg in legs:
        quote = price_tap(fare_feed, card_type, concession, leg)
        concession = quote.state
        full_fares.append(quote.full_fare_fen)
        adult_quote = price_tap(fare_feed, "adult", adult, leg)
        adult = adult_quote.state
        adult_fares.append(adult_quote.fare_fen)
        assert adult_quote.full_fare_fen == adult_quote.fare_fen
    assert full_fares == adult_fares


@settings(max_examples=150, deadline=None)
@given(tariffs(), days_of_taps(), CARD_TYPES)
def test_with_a_daily_cap_a_days_total_never_exceeds_it(tariff, legs, card_type):
    fare_feed, _, caps = tariff
    state = EMPTY_STATE
    per_day: dict[object, int] = defaultdict(int)
    for leg in legs:
        quote = price_tap(fare_feed, card_type, state, leg)
        state = quote.state
        per_day[leg.board_at.date()] += quote.fare_fen
    if card_type in caps:
        assert all(total <= caps[card_type] for total in per_day.values())


@settings(max_examples=150, deadline=None)
@given(tariffs(), days_of_taps(), CARD_TYPES)
def test_a_transfer_never_applies_outside_its_window(tariff, legs, card_type):
    fare_feed, (limit_s, limit_type), _ = tariff
    state = EMPTY_STATE
    previous = None
    run_start, run_pair = None, None  # where consecutive transfers of one group pair began
    for leg in legs:
        quote = price_tap(fare_feed, card_type, state, leg)
        if quote.transfer_rule is None:
            run_start, run_pair = None, None
        else:
            assert previous is not None
            pair = quote.transfer_rule.split(":", 1)[1]
            if pair != run_pair:
                run_start, run_pair = previous, pair
            assert run_start is not None
            start = run_start.board_at if limit_type in (0, 1) else run_start.alight_at
            end = leg.board_at if limit_type in (1, 2) else leg.alight_at
            assert start is not None and end is not None, "a window needs both validations"
            assert timedelta(0) <= end - start <= timedelta(seconds=limit_s)
        state = quote.state
        previous = leg


SAMPLE = load_sample_feed()
SAMPLE_ROUTES = ("1", "2", "3", "5", "601")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(SAMPLE_ROUTES), st.integers(0, 7 * 24 * 60 - 1)), max_size=40
    ),
    st.sampled_from(["adult", "student", "senior", "disabled"]),
)
def test_sample_feed_week_respects_daily_and_weekly_caps(rides, card_type):
    state = EMPTY_STATE
    per_day: dict[object, int] = defaultdict(int)
    week_total = 0
    for route, minute in sorted(rides, key=lambda r: r[1]):
        leg = Leg(route, "old_town", at(0) + timedelta(minutes=minute))
        quote = price_tap(SAMPLE, card_type, state, leg)
        state = quote.state
        per_day[leg.board_at.date()] += quote.fare_fen
        week_total += quote.fare_fen
    day_cap = {"adult": 600, "student": 300, "senior": 0, "disabled": 0}[card_type]
    assert all(total <= day_cap for total in per_day.values())
    if card_type == "adult":
        assert week_total <= 3000


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(SAMPLE_ROUTES),
            st.integers(0, 9 * 24 * 60),
            st.sampled_from(["adult", "student", "senior", "disabled"]),
        ),
        max_size=30,
    )
)
def test_the_state_after_every_tap_survives_the_card_record_unchanged(rides):
    from terminals.capp import TapPlace, decode_transit_record, encode_transit_record

    state = EMPTY_STATE
    for route, minute, card_type in sorted(rides, key=lambda r: r[1]):
        leg = Leg(route, "old_town", at(0) + timedelta(minutes=minute))
        quote = price_tap(SAMPLE, card_type, state, leg)
        raw = encode_transit_record(
            quote.state, TapPlace(route, "old_town", bytes(6), quote.fare_fen)
        )
        state = decode_transit_record(raw, SAMPLE)
        assert state == quote.state


@settings(max_examples=150, deadline=None)
@given(tariffs(), days_of_taps(), st.sampled_from(["student", "senior"]))
def test_full_fares_still_match_when_both_cards_carry_their_state(tariff, legs, card_type):
    """As at a validator: after each tap the state is written to the card and read back."""
    from terminals.capp import TapPlace, decode_transit_record, encode_transit_record

    fare_feed, _, _ = tariff

    def tap(kind: str, state, leg: Leg):
        quote = price_tap(fare_feed, kind, state, leg)
        raw = encode_transit_record(quote.state, TapPlace(leg.route_id, "s1", bytes(6), 0))
        return quote, decode_transit_record(raw, fare_feed)

    concession = adult = EMPTY_STATE
    for leg in legs:
        quote, concession = tap(card_type, concession, leg)
        adult_quote, adult = tap("adult", adult, leg)
        assert quote.full_fare_fen == adult_quote.fare_fen
