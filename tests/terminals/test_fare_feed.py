"""Feed validation: a broken feed is refused with every problem named by file, row and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from terminals.cli import app
from terminals.errors import FeedInvalid
from terminals.fares.feed import load_sample_feed, sample_feed_dir, validate_feed

from .fares_helpers import feed

GOOD_PRODUCTS = "fare_product_id,rider_category_id,amount,currency\nbus_fare,,2.00,CNY\n"
GOOD_LEGS = "leg_group_id,network_id,fare_product_id\nbus,bus,bus_fare\n"


def problems_of(**files: str) -> set[tuple[str, int, str]]:
    with pytest.raises(FeedInvalid) as refused:
        feed(**files)
    return {(p.file, p.row, p.field) for p in refused.value.problems}


def test_sample_feed_is_valid_and_complete():
    sample = load_sample_feed()
    assert validate_feed(sample_feed_dir()) == []
    assert sample.default_rider_category == "adult"
    assert sample.rider_category_for("senior") == "senior"
    assert {c.cap_id for c in sample.caps} == {"adult_day", "adult_week", "student_day"}


def test_missing_required_file_and_column_are_named():
    found = problems_of(fare_products=None, fare_leg_rules="network_id\nbus\n")
    assert ("fare_products.txt", 0, "") in found
    assert ("fare_leg_rules.txt", 1, "fare_product_id") in found


def test_unknown_references_name_row_and_field():
    found = problems_of(
        fare_products=(
            "fare_product_id,rider_category_id,fare_media_id,amount,currency\n"
            "bus_fare,adult,card,2.00,CNY\n"
            "bus_fare,nobody,card,1.00,CNY\n"
            "bus_fare,adult,tape,1.00,CNY\n"
        ),
        fare_leg_rules=(
            "leg_group_id,network_id,from_area_id,fare_product_id\n"
            "bus,bus,,bus_fare\n"
            "x,tram,,bus_fare\n"
            "y,bus,moon,bus_fare\n"
            "z,bus,,ghost_fare\n"
        ),
    )
    assert found >= {
        ("fare_products.txt", 3, "rider_category_id"),
        ("fare_products.txt", 4, "fare_media_id"),
        ("fare_leg_rules.txt", 3, "network_id"),
        ("fare_leg_rules.txt", 4, "from_area_id"),
        ("fare_leg_rules.txt", 5, "fare_product_id"),
    }


def test_amounts_currency_and_duplicates_are_checked():
    found = problems_of(
        fare_products=(
            "fare_product_id,rider_category_id,amount,currency\n"
            "a,,2.005,CNY\n"
            "b,,two,CNY\n"
            "c,,1.00,yuan\n"
            "d,adult,1.00,CNY\n"
            "d,adult,1.50,CNY\n"
        ),
        fare_leg_rules="network_id,fare_product_id\nbus,d\n",
    )
    assert found >= {
        ("fare_products.txt", 2, "amount"),
        ("fare_products.txt", 3, "amount"),
        ("fare_products.txt", 4, "currency"),
        ("fare_products.txt", 6, "fare_product_id"),
    }


def test_transfer_rule_field_constraints():
    found = problems_of(
        fare_products=GOOD_PRODUCTS,
        fare_leg_rules=GOOD_LEGS + "metro,metro,bus_fare\n",
        fare_transfer_rules=(
            "from_leg_group_id,to_leg_group_id,transfer_count,duration_limit,"
            "duration_limit_type,fare_transfer_type,fare_product_id\n"
            "bus,bus,,3600,1,0,\n"  # 2: transfer_count required
            "bus,metro,2,3600,1,0,\n"  # 3: transfer_count forbidden
            "bus,metro,,3600,,0,\n"  # 4: duration_limit_type required
            "bus,metro,,,1,1,\n"  # 5: duration_limit_type forbidden
            "bus,metro,,60,4,0,\n"  # 6: duration_limit_type out of range
            "bus,metro,,60,1,3,\n"  # 7: fare_transfer_type out of range
            "bus,ghost,,60,1,0,\n"  # 8: unknown leg group
            "bus,bus,0,60,1,0,\n"  # 9: transfer_count 0
        ),
    )
    name = "fare_transfer_rules.txt"
    assert found >= {
        (name, 2, "transfer_count"),
        (name, 3, "transfer_count"),
        (name, 4, "duration_limit_type"),
        (name, 5, "duration_limit_type"),
        (name, 6, "duration_limit_type"),
        (name, 7, "fare_transfer_type"),
        (name, 8, "to_leg_group_id"),
        (name, 9, "transfer_count"),
    }


def test_timeframe_constraints():
    found = problems_of(
        fare_products=GOOD_PRODUCTS,
        fare_leg_rules=GOOD_LEGS,
        calendar=(
            "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
            "wk,1,1,1,1,1,0,0,20260101,20251231\n"
        ),
        timeframes=(
            "timeframe_group_id,start_time,end_time,service_id\n"
            "peak,07:00:00,,wk\n"
            "peak,09:00:00,08:00:00,wk\n"
            "peak,07:00:00,24:00:01,wk\n"
            "peak,,,nosuch\n"
        ),
    )
    assert found >= {
        ("calendar.txt", 2, "end_date"),
        ("timeframes.txt", 2, "end_time"),
        ("timeframes.txt", 3, "end_time"),
        ("timeframes.txt", 4, "end_time"),
        ("timeframes.txt", 5, "service_id"),
    }


def test_bus_rule_depending_on_the_alighting_stop_is_refused():
    found = problems_of(
        fare_products=GOOD_PRODUCTS,
        fare_leg_rules="leg_group_id,network_id,from_area_id,to_area_id,fare_product_id\nb,bus,zone1,zone2,bus_fare\n",
    )
    assert ("fare_leg_rules.txt", 2, "to_area_id") in found


def test_zone_rules_of_no_network_are_fine_while_buses_keep_a_tap_on_rule():
    """Agencies often leave network_id empty on metro zone rules; with rule_priority a bus rule
    beside them keeps every bus priced at tap-on, so the feed loads."""
    products = GOOD_PRODUCTS + "zone_fare,,4.00,CNY\n"
    zone_rule = "z,,zone1,zone2,zone_fare,0\n"
    header = "leg_group_id,network_id,from_area_id,to_area_id,fare_product_id,rule_priority\n"
    loaded = feed(fare_products=products, fare_leg_rules=header + zone_rule + "b,,,,bus_fare,0\n")
    assert len(loaded.leg_rules) == 2
    found = problems_of(fare_products=products, fare_leg_rules=header + zone_rule)
    assert ("fare_leg_rules.txt", 2, "to_area_id") in found


def test_extension_files_are_checked():
    found = problems_of(
        fare_products=GOOD_PRODUCTS,
        fare_leg_rules=GOOD_LEGS,
        x_fare_caps=(
            "cap_id,rider_category_id,network_id,period,amount,currency\n"
            "c1,adult,,month,5.00,CNY\n"
            "c2,ghost,,day,5.00,CNY\n"
            "c3,adult,tram,day,5.00,CNY\n"
            "c4,adult,,day,-1,CNY\n"
            "c4,adult,,day,1,CNY\n"
        ),
        x_concessions="card_type,rider_category_id\npensioner,senior\nstudent,ghost\n",
    )
    assert found >= {
        ("x_fare_caps.txt", 2, "period"),
        ("x_fare_caps.txt", 3, "rider_category_id"),
        ("x_fare_caps.txt", 4, "network_id"),
        ("x_fare_caps.txt", 5, "amount"),
        ("x_fare_caps.txt", 6, "cap_id"),
        ("x_concessions.txt", 2, "card_type"),
        ("x_concessions.txt", 3, "rider_category_id"),
    }


def test_problem_text_names_file_row_and_field():
    with pytest.raises(FeedInvalid) as refused:
        feed(
            fare_products=GOOD_PRODUCTS,
            fare_leg_rules="network_id,fare_product_id\ntram,bus_fare\n",
        )
    assert "fare_leg_rules.txt, row 2, field network_id: unknown network 'tram'" in str(
        refused.value
    )


# --------------------------------------------------------------------------- the command line

runner = CliRunner()


def test_cli_validate_accepts_the_sample_and_lists_every_problem_of_a_broken_copy(tmp_path: Path):
    ok = runner.invoke(app, ["fares", "validate", str(sample_feed_dir())])
    assert ok.exit_code == 0, ok.output
    broken = tmp_path / "feed"
    shutil.copytree(sample_feed_dir(), broken)
    (broken / "fare_leg_rules.txt").write_text(
        "leg_group_id,network_id,fare_product_id\nurban,urban,nosuch\nsub,metro,suburban_flat\n"
    )
    result = runner.invoke(app, ["fares", "validate", str(broken)])
    assert result.exit_code == 1
    assert "fare_leg_rules.txt, row 2, field fare_product_id" in result.output
    assert "fare_leg_rules.txt, row 3, field network_id" in result.output


def test_cli_price_prints_fare_rule_transfer_and_cap_progress_per_tap(tmp_path: Path):
    taps = tmp_path / "taps.csv"
    taps.write_text(
        "card,card_type,time,route_id,stop_id\n"
        "C1,adult,2026-11-30T07:40:00+08:00,2,university\n"
        "C1,adult,2026-11-30T07:00:00+08:00,1,old_town\n"
        "C2,student,2026-11-30T07:05:00,3,east_market\n"
    )
    result = runner.invoke(app, ["fares", "price", str(sample_feed_dir()), "--taps", str(taps)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("card,time,route_id,stop_id,card_type,rider_category,fare_fen")
    first, second, third = (line.split(",") for line in lines[1:])
    # Input order is kept, but C1's 07:40 ride is priced after its 07:00 ride: a free transfer.
    assert first[6] == "0" and first[9].startswith("transfer_rule_row_2")
    assert second[6] == "200" and second[10] == "adult_day 200/600;adult_week 200/3000"
    assert third[5:8] == ["student", "100", "200"]


def test_overlapping_timeframes_and_repeated_leg_rules_are_refused():
    found = problems_of(
        fare_products=GOOD_PRODUCTS,
        fare_leg_rules="leg_group_id,network_id,fare_product_id\nbus,bus,bus_fare\nbus2,bus,bus_fare\n",
        calendar=(
            "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
            "wk,1,1,1,1,1,0,0,20260101,20261231\n"
        ),
        timeframes=(
            "timeframe_group_id,start_time,end_time,service_id\n"
            "peak,07:00:00,09:00:00,wk\n"
            "peak,08:30:00,10:00:00,wk\n"
            "peak,09:00:00,10:00:00,wk\n"
        ),
    )
    assert ("timeframes.txt", 3, "start_time") in found
    assert ("timeframes.txt", 4, "start_time") not in found  # touching is not overlapping
    assert ("fare_leg_rules.txt", 3, "fare_product_id") in found


def test_ids_that_travel_in_tap_records_must_fit_64_characters():
    found = problems_of(
        fare_products=GOOD_PRODUCTS,
        fare_leg_rules=GOOD_LEGS,
        routes="route_id,route_type\n" + "r" * 65 + ",3\nb1,3\n",
    )
    assert ("routes.txt", 2, "route_id") in found


def test_cli_price_reports_rows_it_cannot_price_and_exits_1(tmp_path: Path):
    taps = tmp_path / "taps.csv"
    taps.write_text(
        "card,card_type,time,route_id,stop_id\n"
        "C1,pensioner,2026-11-30T07:00:00,1,old_town\n"
        "C1,adult,2026-11-30T08:00:00,99,old_town\n"
        "C2,adult,2026-11-30T08:00:00,1,old_town\n"
    )
    result = runner.invoke(app, ["fares", "price", str(sample_feed_dir()), "--taps", str(taps)])
    assert result.exit_code == 1
    assert "2 tap(s) could not be priced" in result.stderr
    lines = result.stdout.strip().splitlines()
    assert "unknown card type 'pensioner'" in lines[1]
    assert "no fare leg rule prices route '99'" in lines[2]
    assert lines[3].split(",")[6] == "200"


def test_a_bus_terminal_refuses_to_start_on_a_broken_feed(issuer, tmp_path: Path):
    from cardio.keystore import write_key_store

    keys = tmp_path / "issuer.json"
    write_key_store(issuer, keys)
    out = tmp_path / "bus"
    assert (
        runner.invoke(
            app,
            [
                "terminal",
                "provision",
                "--terminal-id",
                "000001000088",
                "--out",
                str(out),
                "--key-store",
                str(keys),
            ],
        ).exit_code
        == 0
    )
    broken = tmp_path / "feed"
    shutil.copytree(sample_feed_dir(), broken)
    (broken / "fare_products.txt").write_text(
        "fare_product_id,amount,currency\nurban_flat,two,CNY\n"
    )
    config = out / "terminal.toml"
    config.write_text(config.read_text().replace('feed = ""', f'feed = "{broken}"'))
    result = runner.invoke(
        app, ["terminal", "run", "bus", "--reader", "no reader", "--config", str(config)]
    )
    assert result.exit_code == 1
    assert "fare_products.txt, row 2, field amount" in result.output


def test_a_feed_file_that_never_ends_is_refused_not_read_forever(tmp_path: Path) -> None:
    # Its size was taken from stat(): a device (or a file still growing) says 0 and was read
    # whole, into memory, without end.
    folder = tmp_path / "feed"
    shutil.copytree(sample_feed_dir(), folder)
    (folder / "areas.txt").unlink()
    (folder / "areas.txt").symlink_to("/dev/zero")
    problems = validate_feed(folder)
    assert [(p.file, p.message) for p in problems] == [("areas.txt", "more than 8388608 bytes")], (
        problems
    )
