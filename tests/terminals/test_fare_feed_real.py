"""Feeds as agencies publish them: unknown columns, join rules, dangling references, and the
command line's grouped problems and --skip-unusable-rules."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from terminals.cli import app
from terminals.errors import FeedInvalid
from terminals.fares.engine import EMPTY_STATE, Leg
from terminals.fares.feed import load_feed, read_feed
from terminals.fares.journeys import price_card_legs

FEEDS = Path(__file__).parent / "feeds"
CST = timezone(timedelta(hours=8))
runner = CliRunner()


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 30, hour, minute, tzinfo=CST)


# --------------------------------------------------------------------------- join rules


def test_legs_joined_at_a_station_are_one_effective_leg():
    feed = load_feed(FEEDS / "joined")
    first = Leg("m1", "a", at(9), "x1", at(9, 20))
    second = Leg("m2", "x2", at(9, 30), "b", at(9, 50))  # x1, x2: platforms of station X
    quotes = price_card_legs(feed, "adult", EMPTY_STATE, [first, second])
    # a -> b is one far fare (4.00), not near (2.00) + far (4.00) from X.
    assert [q.fare_fen for q in quotes] == [200, 200]
    assert quotes[1].fare_rule == "metro:far|joined 2 legs"


def test_a_leg_of_another_network_in_between_breaks_the_join():
    feed = load_feed(FEEDS / "joined")
    legs = [
        Leg("m1", "a", at(9), "x1", at(9, 20)),
        Leg("b7", "x2", at(9, 30)),
        Leg("m2", "x2", at(9, 40), "b", at(9, 50)),
    ]
    assert [q.fare_fen for q in price_card_legs(feed, "adult", EMPTY_STATE, legs)] == [
        200,
        100,
        400,
    ]


def test_join_rules_at_another_stop_do_not_join():
    feed = load_feed(FEEDS / "joined")
    legs = [Leg("m1", "a", at(9), "a", at(9, 20)), Leg("m2", "a", at(9, 30), "b", at(9, 50))]
    assert [q.fare_fen for q in price_card_legs(feed, "adult", EMPTY_STATE, legs)] == [200, 400]


def test_unknown_columns_are_ignored_with_one_notice_per_column():
    loaded = read_feed(FEEDS / "joined")
    assert [(n.file, n.field) for n in loaded.notices] == [
        ("agency.txt", "agency_brand_color"),
        ("routes.txt", "x_line_color"),
        ("stops.txt", "x_exit_count"),
        ("fare_leg_join_rules.txt", "x_note"),
        ("stop_times.txt", ""),  # no trips: a two-tap line's maximum is over every stop
    ]
    result = runner.invoke(app, ["fares", "validate", str(FEEDS / "joined")])
    assert result.exit_code == 0, result.output
    assert result.output.count("notice:") == 5
    assert "notice: routes.txt, row 1, field x_line_color: column not in the GTFS reference" in (
        result.output
    )


def test_cli_price_joins_legs(tmp_path: Path):
    taps = tmp_path / "taps.csv"
    taps.write_text(
        "card,card_type,time,route_id,stop_id,alight_stop_id,alight_time\n"
        "J,adult,2026-11-30T09:30:00+08:00,m2,x2,b,2026-11-30T09:50:00+08:00\n"
        "J,adult,2026-11-30T09:00:00+08:00,m1,a,x1,2026-11-30T09:20:00+08:00\n"
        "N,adult,2026-11-30T09:00:00+08:00,m1,a,,\n"
    )
    result = runner.invoke(app, ["fares", "price", str(FEEDS / "joined"), "--taps", str(taps)])
    assert result.exit_code == 0, result.output
    rows = [line.split(",") for line in result.output.strip().splitlines()[1:]]
    assert [r[6] for r in rows] == ["200", "200", "400"]  # N never tapped off: the maximum
    assert rows[0][8] == "metro:far|joined 2 legs" and "no tap-off" in rows[2][8]


def test_cli_price_explain_shows_every_matching_product_and_the_one_charged(tmp_path: Path):
    taps = tmp_path / "taps.csv"
    taps.write_text(
        "card,card_type,time,route_id,stop_id\nS,student,2026-11-30T07:00:00+08:00,1,old_town\n"
    )
    from terminals.fares.feed import sample_feed_dir

    result = runner.invoke(
        app, ["fares", "price", str(sample_feed_dir()), "--taps", str(taps), "--explain"]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "│ urban_flat" in line]
    assert len(lines) == 4  # adult, student, senior, disabled rows of the product
    (charged,) = [line for line in lines if "charged" in line]
    assert "student" in charged and "1.00" in charged and "onecard" in charged
    assert all("another rider category" in line for line in lines if line != charged)


# --------------------------------------------------------------------------- dangling references


@pytest.fixture
def dangling(tmp_path: Path) -> Path:
    """The sectional feed plus rules naming what it never defines (as a large agency's did)."""
    feed = tmp_path / "dangling"
    shutil.copytree(FEEDS / "sectional", feed)
    lines = (feed / "fare_leg_rules.txt").read_text().splitlines()
    rules = [lines[0] + ",from_timeframe_group_id"] + [line + "," for line in lines[1:]]
    rules += [f"express_peak,express,{area},,two_zones,1,peak" for area in ("z1", "z2", "z3")]
    rules.append("urban_x,urban,z1,z2,two_zones,0,")  # urban riders never tap off
    (feed / "fare_leg_rules.txt").write_text("\n".join(rules) + "\n")
    with (feed / "fare_transfer_rules.txt").open("a") as transfers:
        transfers.write("ghost,urban,5400,2,0\n")
    return feed


def test_dangling_references_are_refused_grouped_one_line_per_kind(dangling: Path):
    with pytest.raises(FeedInvalid) as refused:
        load_feed(dangling)
    assert len(refused.value.problems) == 5 and all(p.unusable for p in refused.value.problems)
    result = runner.invoke(app, ["fares", "validate", str(dangling)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0] == (
        "fare_leg_rules.txt, field from_timeframe_group_id: 3 x unknown timeframe group …, "
        "first at row(s) 12, 13, 14 (e.g. unknown timeframe group 'peak')"
    )
    assert lines[1].startswith("fare_leg_rules.txt, row 15, field to_area_id: a rule for buses")
    assert lines[2].startswith("fare_transfer_rules.txt, row 3, field from_leg_group_id")
    assert lines[3] == (
        "5 problem(s), all in rules onecard cannot use: add --skip-unusable-rules to load the "
        "feed without them."
    )


def test_skip_unusable_rules_loads_the_rest_and_says_what_it_left_out(dangling: Path, tmp_path):
    result = runner.invoke(app, ["fares", "validate", str(dangling), "--skip-unusable-rules"])
    assert result.exit_code == 0, result.output
    skipped = [line for line in result.output.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 3
    assert "[a rule naming a timeframe group the feed does not define]" in skipped[0]
    assert "[an alighting-dependent rule on a network not marked tap_on_off]" in skipped[1]
    assert "[a rule naming a leg group the feed does not define]" in skipped[2]
    assert result.output.strip().endswith("valid (5 rule(s) skipped)")
    feed = load_feed(dangling, skip_unusable_rules=True)
    assert {r.leg_group_id for r in feed.leg_rules} == {"express", "urban"}
    assert len(feed.transfer_rules) == 1

    taps = tmp_path / "taps.csv"
    taps.write_text(
        "card,card_type,time,route_id,stop_id,alight_stop_id,alight_time\n"
        "C,adult,2026-11-30T09:00:00+08:00,900,s1,s3,2026-11-30T09:20:00+08:00\n"
    )
    refused = runner.invoke(app, ["fares", "price", str(dangling), "--taps", str(taps)])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "3 x unknown timeframe group" in refused.output
    priced = runner.invoke(
        app, ["fares", "price", str(dangling), "--taps", str(taps), "--skip-unusable-rules"]
    )
    assert priced.exit_code == 0, priced.output
    assert "C,2026-11-30T09:00:00+08:00,900,s1,adult,adult,300,300,express:two_zones" in (
        priced.output
    )


def test_a_problem_of_the_feed_itself_is_not_skipped(dangling: Path):
    (dangling / "fare_products.txt").write_text(
        (dangling / "fare_products.txt").read_text() + "broken,abc,CNY\n"
    )
    result = runner.invoke(app, ["fares", "validate", str(dangling), "--skip-unusable-rules"])
    assert result.exit_code == 1
    assert "the feed would be refused" in result.output and "skipped:" not in result.output
