"""Fare engine: one test per GTFS-Fares v2 rule kind and per onecard extension."""

from __future__ import annotations

from datetime import timedelta

import pytest

from terminals.errors import FeedInvalid, NoFare
from terminals.fares.engine import (
    EMPTY_STATE,
    Leg,
    RideState,
    match_leg_rules,
    price_leg,
    price_tap,
)
from terminals.fares.feed import load_sample_feed
from terminals.fares.journeys import CardTap, price_taps

from .fares_helpers import at, feed

PRODUCTS = (
    "fare_product_id,rider_category_id,fare_media_id,amount,currency\n"
    "bus_fare,adult,card,2.00,CNY\n"
    "bus_fare,student,card,1.00,CNY\n"
    "bus_fare,senior,,0,CNY\n"
    "bus_fare,adult,paper,3.00,CNY\n"
    "metro_fare,,,4.00,CNY\n"
    "other_fare,,,9.00,CNY\n"
    "zone_fare,,,6.00,CNY\n"
    "airport_fare,,,25.00,CNY\n"
    "peak_fare,,,5.00,CNY\n"
    "xfer_fee,,,0.50,CNY\n"
    "xfer_credit,,,-1.00,CNY\n"
    "pass_ab,,,5.00,CNY\n"
)


def ride(route: str, stop: str = "s1", when=None, alight_stop=None, alight_at=None) -> Leg:
    return Leg(route, stop, when or at(8), alight_stop, alight_at)


def charges(fare_feed, legs, rider="adult"):
    state = EMPTY_STATE
    out = []
    for leg in legs:
        quote = price_leg(fare_feed, rider, state, leg)
        state = quote.state
        out.append(quote.fare_fen)
    return out


# --------------------------------------------------------------------------- leg rules


def test_exact_network_match_wins_and_empty_network_means_all_others():
    f = feed(
        fare_products=PRODUCTS,
        fare_leg_rules="leg_group_id,network_id,fare_product_id\nbus,bus,bus_fare\nrest,,other_fare\n",
    )
    assert price_leg(f, "adult", EMPTY_STATE, ride("b1")).fare_fen == 200
    # metro is not listed: the empty network row ("all other networks") applies.
    assert price_leg(f, "adult", EMPTY_STATE, ride("m1")).fare_fen == 900
    # bus is listed: the empty row must not be offered to a bus leg, even though it would match.
    assert [r.leg_group_id for r in match_leg_rules(f, ride("b1"))] == ["bus"]


def test_without_rule_priority_an_area_listed_anywhere_excludes_empty_area_rules():
    f = feed(
        fare_products=PRODUCTS,
        fare_leg_rules=(
            "leg_group_id,network_id,from_area_id,fare_product_id\n"
            "airport,express,airport,airport_fare\n"
            "express,express,,zone_fare\n"
        ),
    )
    assert price_leg(f, "adult", EMPTY_STATE, ride("x1", "ap")).fare_fen == 2500
    assert price_leg(f, "adult", EMPTY_STATE, ride("x1", "s1")).fare_fen == 600


def test_rule_priority_empty_means_any_and_highest_priority_wins():
    f = feed(
        fare_products=PRODUCTS,
        fare_leg_rules=(
            "leg_group_id,network_id,from_area_id,fare_product_id,rule_priority\n"
            "express,express,,zone_fare,0\n"
            "airport,,airport,airport_fare,1\n"
        ),
    )
    # With rule_priority an empty network matches any network; priority 1 beats 0.
    assert price_leg(f, "adult", EMPTY_STATE, ride("x1", "ap")).fare_fen == 2500
    assert price_leg(f, "adult", EMPTY_STATE, ride("b1", "ap")).fare_fen == 2500
    assert price_leg(f, "adult", EMPTY_STATE, ride("x1", "s1")).fare_fen == 600
    with pytest.raises(NoFare):
        price_leg(f, "adult", EMPTY_STATE, ride("b1", "s1"))


def test_equal_priority_offers_both_and_the_rider_pays_the_cheaper():
    f = feed(
        fare_products=PRODUCTS,
        fare_leg_rules=(
            "leg_group_id,network_id,fare_product_id,rule_priority\n"
            "a,bus,peak_fare,2\nb,bus,bus_fare,2\nc,bus,metro_fare,1\n"
        ),
    )
    assert {r.leg_group_id for r in match_leg_rules(f, ride("b1"))} == {"a", "b"}
    assert price_leg(f, "adult", EMPTY_STATE, ride("b1")).fare_fen == 200


def test_stop_in_two_areas_matches_a_rule_of_either():
    f = feed(
        fare_products=PRODUCTS,
        fare_leg_rules=(
            "leg_group_id,network_id,from_area_id,fare_product_id\n"
            "z2,bus,zone2,zone_fare\nz1other,bus,,bus_fare\n"
        ),
    )
    assert price_leg(f, "adult", EMPTY_STATE, ride("b1", "s3")).fare_fen == 600
    assert price_leg(f, "adult", EMPTY_STATE, ride("b1", "s1")).fare_fen == 200


def test_tap_on_only_leg_matches_only_rules_without_an_alighting_area():
    f = feed(
        fare_products=PRODUCTS,
        fare_leg_rules=(
            "leg_group_id,network_id,from_area_id,to_area_id,fare_product_id,rule_priority\n"
            "m12,metro,zone1,zone2,zone_fare,1\nm,metro,,,metro_fare,0\n"
        ),
    )
    assert price_leg(f, "adult", EMPTY_STATE, ride("m1", "s1")).fare_fen == 400
    known = ride("m1", "s1", alight_stop="s2", alight_at=at(8, 20))
    assert price_leg(f, "adult", EMPTY_STATE, known).fare_fen == 600


def test_exact_match_feed_with_alighting_areas_refuses_a_tap_on_only_leg():
    f = feed(
        fare_products=PRODUCTS,
        fare_leg_rules=(
            "leg_group_id,network_id,from_area_id,to_area_id,fare_product_id\n"
            "m12,metro,zone1,zone2,zone_fare\nm,metro,,,metro_fare\n"
        ),
    )
    # zone1 is listed, so the empty from_area row is excluded; the alighting area is unknown.
    with pytest.raises(NoFare):
        price_leg(f, "adult", EMPTY_STATE, ride("m1", "s1"))
    known = ride("m1", "s1", alight_stop="s2", alight_at=at(8, 20))
    assert price_leg(f, "adult", EMPTY_STATE, known).fare_fen == 600


def test_timeframes_pick_peak_fare_only_on_service_days_and_inside_the_window():
    f = feed(
        fare_products=PRODUCTS,
        calendar=(
            "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
            "weekdays,1,1,1,1,1,0,0,20260101,20271231\n"
        ),
        calendar_dates="service_id,date,exception_type\nweekdays,20261201,2\n",
        timeframes=(
            "timeframe_group_id,start_time,end_time,service_id\n"
            "peak,07:00:00,09:00:00,weekdays\npeak,17:00:00,19:00:00,weekdays\n"
        ),
        fare_leg_rules=(
            "leg_group_id,network_id,from_timeframe_group_id,fare_product_id\n"
            "peak,metro,peak,peak_fare\noffpeak,metro,,metro_fare\n"
        ),
    )
    monday, saturday, holiday = 30, 28, 1
    assert price_leg(f, "adult", EMPTY_STATE, ride("m1", when=at(7, 0, monday))).fare_fen == 500
    assert (
        price_leg(f, "adult", EMPTY_STATE, ride("m1", when=at(8, 59, monday, 59))).fare_fen == 500
    )
    assert price_leg(f, "adult", EMPTY_STATE, ride("m1", when=at(9, 0, monday))).fare_fen == 400
    assert price_leg(f, "adult", EMPTY_STATE, ride("m1", when=at(18, 0, saturday))).fare_fen == 400
    december_1 = at(8).replace(month=12, day=holiday)
    assert price_leg(f, "adult", EMPTY_STATE, ride("m1", when=december_1)).fare_fen == 400


# --------------------------------------------------------------------------- riders and media


def test_rider_category_price_and_card_medium_row_are_chosen():
    f = feed(fare_products=PRODUCTS, fare_leg_rules="network_id,fare_product_id\nbus,bus_fare\n")
    assert price_leg(f, "adult", EMPTY_STATE, ride("b1")).fare_fen == 200  # not the paper 3.00
    assert price_leg(f, "student", EMPTY_STATE, ride("b1")).fare_fen == 100
    assert price_leg(f, "senior", EMPTY_STATE, ride("b1")).fare_fen == 0
    assert price_tap(f, "student", EMPTY_STATE, ride("b1")).fare_fen == 100


def test_concession_quote_names_the_full_fare_for_the_subsidy_claim():
    sample = load_sample_feed()
    senior = price_tap(sample, "senior", EMPTY_STATE, ride_sample())
    student = price_tap(sample, "student", EMPTY_STATE, ride_sample())
    adult = price_tap(sample, "adult", EMPTY_STATE, ride_sample())
    assert (senior.fare_fen, senior.full_fare_fen, senior.rider_category_id) == (0, 200, "senior")
    assert (student.fare_fen, student.full_fare_fen) == (100, 200)
    assert (adult.fare_fen, adult.full_fare_fen) == (200, 200)


def ride_sample(route="1", when=None):
    return Leg(route, "old_town", when or at(8))


# --------------------------------------------------------------------------- transfers

LEG_RULES = "leg_group_id,network_id,fare_product_id\nbus,bus,bus_fare\nmetro,metro,metro_fare\n"


def transfer_feed(rules: str):
    return feed(
        fare_products=PRODUCTS,
        fare_leg_rules=LEG_RULES,
        fare_transfer_rules=(
            "from_leg_group_id,to_leg_group_id,transfer_count,duration_limit,"
            "duration_limit_type,fare_transfer_type,fare_product_id\n" + rules
        ),
    )


def test_transfer_type_0_charges_only_the_transfer_product():
    f = transfer_feed("bus,metro,,3600,1,0,xfer_fee\n")
    assert charges(f, [ride("b1", when=at(8)), ride("m1", when=at(8, 30))]) == [200, 50]


def test_transfer_type_1_charges_next_leg_plus_transfer_product():
    f = transfer_feed("bus,metro,,3600,1,1,xfer_credit\n")
    assert charges(f, [ride("b1", when=at(8)), ride("m1", when=at(8, 30))]) == [200, 300]


def test_transfer_type_2_makes_the_pair_cost_the_transfer_product():
    f = transfer_feed("bus,metro,,3600,1,2,pass_ab\n")
    assert charges(f, [ride("b1", when=at(8)), ride("m1", when=at(8, 30))]) == [200, 300]


def test_empty_transfer_product_makes_the_transfer_free():
    f = transfer_feed("bus,bus,1,3600,1,0,\n")
    assert charges(f, [ride("b1", when=at(8)), ride("b2", when=at(8, 59))]) == [200, 0]


def test_duration_limit_is_inclusive_and_a_second_late_starts_a_new_journey():
    f = transfer_feed("bus,bus,1,3600,1,0,\n")
    assert charges(f, [ride("b1", when=at(8)), ride("b2", when=at(9, 0))]) == [200, 0]
    assert charges(f, [ride("b1", when=at(8)), ride("b2", when=at(9, 0, second=1))]) == [200, 200]


def test_transfer_count_limits_the_chain_and_the_smallest_sufficient_count_is_used():
    f = transfer_feed("bus,bus,1,3600,1,0,\nbus,bus,3,3600,1,0,xfer_fee\n")
    legs = [ride("b1", when=at(8, 10 * i)) for i in range(5)]
    # first transfer: count 1 rule (free); second and third: count 3 rule (fee); fourth: none.
    assert charges(f, legs) == [200, 0, 50, 50, 200]


def test_transfer_count_minus_one_is_unlimited():
    f = transfer_feed("bus,bus,-1,3600,1,0,\n")
    assert charges(f, [ride("b1", when=at(8, 10 * i)) for i in range(6)]) == [200, 0, 0, 0, 0, 0]


def test_a_chain_of_the_same_rule_counts_its_window_from_the_first_matched_leg():
    """GTFS: consecutive matches of one transfer rule measure duration_limit from the first
    matched leg, so a 60-minute window does not slide along a chain of 40-minute hops."""
    f = transfer_feed("bus,bus,-1,3600,1,0,\n")
    legs = [ride("b1", when=at(8, 0)), ride("b2", when=at(8, 40)), ride("b1", when=at(9, 20))]
    assert charges(f, legs) == [200, 0, 200]
    legs.append(ride("b2", when=at(10, 0)))  # 40 min after the new journey began at 09:20
    assert charges(f, legs) == [200, 0, 200, 0]


def test_rows_of_one_group_pair_share_the_window_whatever_their_transfer_count():
    f = transfer_feed("bus,bus,1,3600,1,0,\nbus,bus,3,3600,1,0,xfer_fee\n")
    legs = [ride("b1", when=at(8, 0)), ride("b2", when=at(8, 40)), ride("b1", when=at(9, 20))]
    # 09:20 is 80 minutes after 08:00, where the bus>bus run began: a fresh fare, not the fee.
    assert charges(f, legs) == [200, 0, 200]


def test_another_rule_starts_its_window_at_the_previous_leg():
    f = transfer_feed("bus,metro,,3600,1,0,\nmetro,bus,,3600,1,0,\n")
    legs = [ride("b1", when=at(8, 0)), ride("m1", when=at(8, 40)), ride("b2", when=at(9, 20))]
    assert charges(f, legs) == [200, 0, 0]


def test_transfer_type_2_then_a_second_transfer_adds_bc():
    """GTFS cost table: type 2 processes A > B as AB and B > C as S + BC."""
    f = transfer_feed("bus,bus,2,3600,1,2,xfer_fee\n")
    legs = [ride("b1", when=at(8, 0)), ride("b2", when=at(8, 10)), ride("b1", when=at(8, 20))]
    # A > B: the pair costs AB = 0.50, already paid by A (never a refund); B > C: S + 0.50.
    assert charges(f, legs) == [200, 0, 50]


def test_empty_leg_groups_in_transfer_rules_mean_all_other_groups():
    f = transfer_feed("bus,,,3600,1,0,xfer_fee\n")
    # bus -> metro: "to all other groups" applies
    assert charges(f, [ride("b1", when=at(8)), ride("m1", when=at(8, 20))]) == [200, 50]
    # metro -> bus: from metro is not covered (empty from would be needed)
    assert charges(f, [ride("m1", when=at(8)), ride("b1", when=at(8, 20))]) == [400, 200]


def test_duration_limit_types_measure_between_the_right_validations():
    def legs():
        first = ride("m1", "s1", at(8, 0), alight_stop="s2", alight_at=at(8, 40))
        second = ride("m1", "s2", at(8, 50), alight_stop="s1", alight_at=at(9, 20))
        return [first, second]

    def second_charge(limit_type: int, limit_s: int) -> int:
        f = feed(
            fare_products=PRODUCTS,
            fare_leg_rules="leg_group_id,network_id,fare_product_id\nmetro,metro,metro_fare\n",
            fare_transfer_rules=(
                "from_leg_group_id,to_leg_group_id,transfer_count,duration_limit,"
                "duration_limit_type,fare_transfer_type,fare_product_id\n"
                f"metro,metro,1,{limit_s},{limit_type},0,\n"
            ),
        )
        return charges(f, legs())[1]

    # type 0: departure 08:00 -> arrival 09:20 = 80 min
    assert second_charge(0, 80 * 60) == 0 and second_charge(0, 79 * 60) == 400
    # type 1: departure 08:00 -> departure 08:50 = 50 min
    assert second_charge(1, 50 * 60) == 0 and second_charge(1, 49 * 60) == 400
    # type 2: arrival 08:40 -> departure 08:50 = 10 min
    assert second_charge(2, 10 * 60) == 0 and second_charge(2, 9 * 60) == 400
    # type 3: arrival 08:40 -> arrival 09:20 = 40 min
    assert second_charge(3, 40 * 60) == 0 and second_charge(3, 39 * 60) == 400


def test_arrival_based_limit_is_never_met_by_tap_on_only_buses():
    f = transfer_feed("bus,bus,1,3600,2,0,\n")
    assert charges(f, [ride("b1", when=at(8)), ride("b2", when=at(8, 5))]) == [200, 200]


# --------------------------------------------------------------------------- caps


def cap_feed(caps: str):
    return feed(
        fare_products=PRODUCTS,
        fare_leg_rules=LEG_RULES,
        x_fare_caps="cap_id,rider_category_id,network_id,period,amount,currency\n" + caps,
    )


def test_daily_cap_stops_charging_and_resets_on_the_next_local_day():
    f = cap_feed("day,adult,,day,5.00,CNY\n")
    legs = [ride("b1", when=at(h)) for h in (7, 9, 11, 13)]
    assert charges(f, legs) == [200, 200, 100, 0]
    state = EMPTY_STATE
    for leg in legs:
        state = price_leg(f, "adult", state, leg).state
    # 00:30 Beijing time next day is a new service day (15:30 UTC would not be).
    assert (
        price_leg(f, "adult", state, ride("b1", when=at(0, 30, day=1).replace(month=12))).fare_fen
        == 200
    )


def test_weekly_cap_counts_from_monday():
    f = cap_feed("week,adult,,week,7.00,CNY\n")
    state = EMPTY_STATE
    paid = []
    for day in (30,):
        for hour in (7, 9, 11, 13):
            quote = price_leg(f, "adult", state, ride("m1", when=at(hour, day=day)))
            state = quote.state
            paid.append(quote.fare_fen)
    assert paid == [400, 300, 0, 0]
    monday_next = at(8, day=7).replace(month=12)
    assert price_leg(f, "adult", state, ride("m1", when=monday_next)).fare_fen == 400


def test_network_cap_counts_only_its_network():
    f = cap_feed("buscap,adult,bus,day,3.00,CNY\n")
    legs = [
        ride("b1", when=at(7)),
        ride("m1", when=at(8)),
        ride("b1", when=at(9)),
        ride("b1", when=at(10)),
    ]
    assert charges(f, legs) == [200, 400, 100, 0]


def test_cap_of_another_rider_category_does_not_apply():
    f = cap_feed("day,adult,,day,2.00,CNY\n")
    assert charges(f, [ride("b1", when=at(h)) for h in (7, 8, 9)], rider="student") == [
        100,
        100,
        100,
    ]


def test_sample_feed_day_matches_the_published_tariff():
    sample = load_sample_feed()
    taps = [
        CardTap("A", "adult", ride_sample("1", at(7))),
        CardTap("A", "adult", ride_sample("2", at(7, 30))),  # free transfer
        CardTap("A", "adult", ride_sample("3", at(8, 40))),  # window over
        CardTap("A", "adult", ride_sample("601", at(9, 0))),  # 5.00 - 2.00 credit
        CardTap("A", "adult", ride_sample("5", at(17))),  # capped at 6.00
        CardTap("S", "student", ride_sample("5", at(7))),
        CardTap("O", "senior", ride_sample("601", at(7))),
    ]
    quotes = price_taps(sample, taps)
    assert [q.fare_fen for q in quotes] == [200, 0, 200, 200, 0, 100, 0]
    assert quotes[3].transfer_rule is not None and quotes[3].cap_savings_fen == 100
    assert quotes[6].full_fare_fen == 500


def test_no_matching_rule_is_refused_not_free():
    f = feed(fare_products=PRODUCTS, fare_leg_rules="network_id,fare_product_id\nbus,bus_fare\n")
    with pytest.raises(NoFare):
        price_leg(f, "adult", EMPTY_STATE, ride("m1"))


def test_state_from_an_older_period_is_ignored_not_trusted():
    f = cap_feed("day,adult,,day,5.00,CNY\n")
    state = RideState()
    for hour in (7, 9, 11):
        state = price_leg(f, "adult", state, ride("b1", when=at(hour))).state
    later = at(8) + timedelta(days=1)
    assert price_leg(f, "adult", state, ride("b1", when=later)).fare_fen == 200


# --------------------------------------------------------------------------- more catalogue cases


def test_a_product_sold_only_on_paper_is_not_offered_to_a_card():
    f = feed(
        fare_products=(
            "fare_product_id,rider_category_id,fare_media_id,amount,currency\n"
            "paper_only,,paper,1.00,CNY\ncard_fare,,card,2.50,CNY\n"
        ),
        fare_leg_rules=(
            "leg_group_id,network_id,fare_product_id,rule_priority\n"
            "p,bus,paper_only,1\nc,bus,card_fare,1\n"
        ),
    )
    quote = price_leg(f, "adult", EMPTY_STATE, ride("b1"))
    assert (quote.fare_fen, quote.fare_product_id) == (250, "card_fare")


def test_a_rider_without_a_row_pays_the_any_rider_row_then_the_default_rows():
    f = feed(
        fare_products=(
            "fare_product_id,rider_category_id,amount,currency\n"
            "a,adult,3.00,CNY\na,,2.50,CNY\nb,adult,4.00,CNY\n"
        ),
        fare_leg_rules="leg_group_id,network_id,fare_product_id\nbus,bus,a\nmetro,metro,b\n",
    )
    assert price_leg(f, "student", EMPTY_STATE, ride("b1")).fare_fen == 250
    assert price_leg(f, "student", EMPTY_STATE, ride("m1")).fare_fen == 400
    assert price_leg(f, "adult", EMPTY_STATE, ride("b1")).fare_fen == 300


def test_transfer_product_is_priced_for_the_riders_category():
    f = feed(
        fare_products=PRODUCTS + "credit,adult,,-1.50,CNY\ncredit,student,,-0.50,CNY\n",
        fare_leg_rules=LEG_RULES,
        fare_transfer_rules=(
            "from_leg_group_id,to_leg_group_id,transfer_count,duration_limit,"
            "duration_limit_type,fare_transfer_type,fare_product_id\n"
            "bus,metro,,3600,1,1,credit\n"
        ),
    )
    legs = [ride("b1", when=at(8)), ride("m1", when=at(8, 30))]
    assert charges(f, legs, rider="adult") == [200, 250]
    assert charges(f, legs, rider="student") == [100, 350]  # metro has one price: 4.00 - 0.50


def test_transfer_only_type_never_charges_below_zero():
    f = transfer_feed("bus,metro,,3600,1,2,xfer_fee\n")  # AB = 0.50 < what was paid already
    assert charges(f, [ride("b1", when=at(8)), ride("m1", when=at(8, 30))]) == [200, 0]


def test_networks_may_come_from_routes_txt():
    f = feed(
        routes="route_id,route_type,network_id\nb1,3,bus\nm1,1,metro\n",
        route_networks=None,
        fare_products=PRODUCTS,
        fare_leg_rules=LEG_RULES,
    )
    assert price_leg(f, "adult", EMPTY_STATE, ride("m1")).fare_fen == 400


def test_whole_day_timeframe_and_rule_priority_combine():
    f = feed(
        fare_products=PRODUCTS,
        calendar=(
            "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
            "all,1,1,1,1,1,1,1,20260101,20271231\n"
        ),
        timeframes=(
            "timeframe_group_id,start_time,end_time,service_id\n"
            "any_time,,,all\nnight,00:00:00,05:00:00,all\n"
        ),
        fare_leg_rules=(
            "leg_group_id,network_id,from_timeframe_group_id,fare_product_id,rule_priority\n"
            "day,bus,any_time,bus_fare,0\nnight,,night,peak_fare,5\n"
        ),
    )
    assert price_leg(f, "adult", EMPTY_STATE, ride("b1", when=at(4, 59))).fare_fen == 500
    assert price_leg(f, "adult", EMPTY_STATE, ride("b1", when=at(5, 0))).fare_fen == 200
    assert price_leg(f, "adult", EMPTY_STATE, ride("b1", when=at(23, 59))).fare_fen == 200


def test_network_cap_and_all_network_cap_both_hold():
    f = cap_feed("all,adult,,day,7.00,CNY\nbus,adult,bus,day,3.00,CNY\n")
    legs = [
        ride("b1", when=at(7)),
        ride("b1", when=at(8)),
        ride("m1", when=at(9)),
        ride("m1", when=at(10)),
    ]
    # bus: 2.00, then 1.00 (bus cap 3.00); metro 4.00 (all 7.00 now reached), then 0
    assert charges(f, legs) == [200, 100, 400, 0]


def test_a_card_that_changes_category_keeps_only_its_new_categorys_cap_progress():
    f = cap_feed(
        "a1,adult,,day,9.00,CNY\na2,adult,,week,30.00,CNY\na3,adult,bus,day,5.00,CNY\n"
        "s1,student,,day,3.00,CNY\n"
    )
    state = price_leg(f, "student", EMPTY_STATE, ride("b1", when=at(7))).state
    assert [p.cap_id for p in state.caps] == ["s1"]
    assert state.full is not None  # the adult caps of its full fare: a1, a2, a3
    assert [p.cap_id for p in state.full.caps] == ["a1", "a2", "a3"]
    state = price_leg(f, "adult", state, ride("b1", when=at(8))).state
    state = price_leg(f, "adult", state, ride("m1", when=at(9))).state
    assert [p.cap_id for p in state.caps] == ["a1", "a2", "a3"]  # no student one
    assert state.full is None


def test_a_senior_claims_the_full_fare_an_adult_pays_for_the_same_three_rides():
    """06:30, 07:30 and 08:30 on the sample feed: an adult pays 200 / 0 (transfer) / 200 (the
    one-transfer allowance is spent); the senior rides free and its full fares are the same."""
    sample = load_sample_feed()
    senior = adult = EMPTY_STATE
    full, paid, adult_paid = [], [], []
    for hour, minute in ((6, 30), (7, 30), (8, 30)):
        leg = Leg("1", "old_town", at(hour, minute))
        quote = price_tap(sample, "senior", senior, leg)
        senior = quote.state
        full.append(quote.full_fare_fen)
        paid.append(quote.fare_fen)
        adult_quote = price_tap(sample, "adult", adult, leg)
        adult = adult_quote.state
        adult_paid.append(adult_quote.fare_fen)
    assert adult_paid == [200, 0, 200]
    assert full == [200, 0, 200]
    assert paid == [0, 0, 0]


def test_a_concession_card_must_have_room_for_the_adult_caps_of_its_full_fare():
    with pytest.raises(FeedInvalid) as refused:
        cap_feed(
            "a1,adult,,day,9.00,CNY\na2,adult,,week,30.00,CNY\na3,adult,bus,day,5.00,CNY\n"
            "s1,student,,day,3.00,CNY\ns2,student,,week,9.00,CNY\n"
        )
    assert "a 'student' card needs 5 cap slots" in str(refused.value)


def test_a_ride_the_default_rider_cannot_buy_claims_nothing_and_still_fits_on_the_card():
    from terminals.capp import TapPlace, decode_transit_record, encode_transit_record

    f = feed(
        fare_products=(
            "fare_product_id,rider_category_id,amount,currency\n"
            "bus_fare,adult,2.00,CNY\nbus_fare,senior,0,CNY\nsenior_only,senior,0,CNY\n"
        ),
        fare_leg_rules=(
            "leg_group_id,network_id,fare_product_id\nbus,bus,bus_fare\nmetro,metro,senior_only\n"
        ),
    )
    state = price_tap(f, "senior", EMPTY_STATE, ride("b1", when=at(7))).state
    quote = price_tap(f, "senior", state, ride("m1", when=at(8)))
    assert (quote.fare_fen, quote.full_fare_fen) == (0, 0)
    raw = encode_transit_record(quote.state, TapPlace("m1", "s1", bytes(6), 0))
    assert decode_transit_record(raw, f) == quote.state
