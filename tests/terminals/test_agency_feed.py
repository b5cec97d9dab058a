"""A feed written the way public agencies publish theirs, which onecard's engineers never saw.

Columns in another order, extra unknown columns, a UTF-8 BOM, CRLF line ends, quoted commas,
optional files absent (no x_concessions.txt, no x_fare_caps.txt, no route_networks.txt), a
full-size stop_times.txt beside the fares, a currency other than CNY, stations in areas with
taps at their platforms, peak and off-peak timeframes with rule_priority, exit validations.
"""

from __future__ import annotations

import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from terminals.cli import app
from terminals.errors import FeedInvalid
from terminals.fares.engine import EMPTY_STATE, Leg, price_leg
from terminals.fares.feed import load_feed, parse_feed, validate_feed

from .fares_helpers import CST


def at(hour: int, minute: int = 0, day: int = 2) -> datetime:
    """A moment on 2026-12-<day> in the agency's time (12-01 a Tuesday, 12-02 a Wednesday)."""
    return datetime(2026, 12, day, hour, minute, tzinfo=CST)


FILES = {
    "agency.txt": (
        "agency_id,agency_name,agency_url,agency_timezone,agency_lang\n"
        'MT,"Metro Transit, Inc.",https://transit.example,Asia/Shanghai,zh\n'
    ),
    "routes.txt": (
        "route_long_name,route_id,agency_id,route_short_name,route_type,route_color,network_id\n"
        "Bus One,R1,MT,1,3,FF0000,bus\nSky Line,SKY,MT,S,1,00FF00,rail\n"
    ),
    "stops.txt": (
        "stop_id,stop_name,stop_lat,stop_lon,location_type,parent_station,wheelchair_boarding\n"
        'STN_A,"Station A",29.6,91.1,1,,1\n'
        'A_P1,"Station A, platform 1",29.6,91.1,0,STN_A,1\n'
        "STN_B,Station B,29.7,91.2,1,,\n"
        "B_P1,Station B platform 1,29.7,91.2,,STN_B,\n"
        "B_P2,Station B platform 2 (own area),29.7,91.2,0,STN_B,\n"
        "BS1,Bus stop 1,29.8,91.3,,,\n"
    ),
    "calendar.txt": (
        "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
        "WK,1,1,1,1,1,0,0,20260101,20271231\nWE,0,0,0,0,0,1,1,20260101,20271231\n"
    ),
    "calendar_dates.txt": "service_id,date,exception_type\nWE,20261201,1\nWK,20261201,2\n",
    "fare_media.txt": (
        "fare_media_type,fare_media_id,fare_media_name\n2,city_card,City Card\n0,cash,\n"
    ),
    "rider_categories.txt": (
        "rider_category_id,rider_category_name,is_default_fare_category,eligibility_url\n"
        "regular,Adult,1,\nconcession,Concession,0,https://transit.example/c\n"
    ),
    "fare_products.txt": (
        "fare_product_id,fare_product_name,amount,currency,rider_category_id,fare_media_id\n"
        "one_zone,1 Zone,3.20,HKD,regular,city_card\n"
        "one_zone,1 Zone,3.50,HKD,regular,cash\n"
        "two_zone,2 Zones,4.65,HKD,regular,city_card\n"
        "off_peak,Off-peak,3.00,HKD,,city_card\n"
        "bus,Bus,2.90,HKD,,\n"
    ),
    "areas.txt": "area_id,area_name\nz1,Zone 1\nz2,Zone 2\n",
    "stop_areas.txt": "area_id,stop_id\nz1,STN_A\nz2,STN_B\nz1,B_P2\nz1,BS1\n",
    "networks.txt": "network_id,network_name\nbus,Bus\nrail,Rail\n",
    "timeframes.txt": (
        "timeframe_group_id,start_time,end_time,service_id\n"
        "peak,06:30:00,18:30:00,WK\n"
        "off,00:00:00,06:30:00,WK\noff,18:30:00,24:00:00,WK\noff,,,WE\n"
    ),
    "fare_leg_rules.txt": (
        "leg_group_id,network_id,from_area_id,to_area_id,from_timeframe_group_id,"
        "to_timeframe_group_id,fare_product_id,rule_priority\n"
        "rail_1z,rail,z1,z1,,,one_zone,0\nrail_1z,rail,z2,z2,,,one_zone,0\n"
        "rail_2z,rail,z1,z2,,,two_zone,0\nrail_2z,rail,z2,z1,,,two_zone,0\n"
        "rail_off,rail,,,off,,off_peak,1\n"
        "bus,bus,,,,,bus,\n"
    ),
    "fare_transfer_rules.txt": (
        "from_leg_group_id,to_leg_group_id,transfer_count,duration_limit,duration_limit_type,"
        "fare_transfer_type,fare_product_id,agency_note\n"
        "bus,bus,-1,5400,1,0,,unlimited within 90 min\n"
        "bus,rail_2z,,5400,1,0,,\n"
    ),
    "trips.txt": "route_id,service_id,trip_id\nR1,WK,t1\n",
}


def write_feed(directory: Path, files: dict[str, str] = FILES) -> Path:
    directory.mkdir()
    for name, text in files.items():
        with (directory / name).open("w", encoding="utf-8", newline="") as handle:
            handle.write("\ufeff" + text.replace("\n", "\r\n"))
    return directory


@pytest.fixture
def agency_feed(tmp_path: Path) -> Path:
    path = write_feed(tmp_path / "agency")
    # A full GTFS feed carries schedules far larger than any fare file: they are not fares.
    line = "t1,08:00:00,08:00:00,BS1,1\r\n"
    with (path / "stop_times.txt").open("w", encoding="utf-8", newline="") as handle:
        handle.write("trip_id,arrival_time,departure_time,stop_id,stop_sequence\r\n")
        handle.write(line * (9 * 1024 * 1024 // len(line)))
    return path


def test_an_agency_style_feed_loads(agency_feed: Path) -> None:
    assert validate_feed(agency_feed) == []
    fare_feed = load_feed(agency_feed)
    assert fare_feed.currency == "HKD" and fare_feed.card_media_id == "city_card"
    assert fare_feed.rider_category_for("student") == "regular"  # no x_concessions: the default


def test_a_station_in_an_area_puts_its_platforms_there_unless_they_have_their_own(
    agency_feed: Path,
) -> None:
    fare_feed = load_feed(agency_feed)
    assert fare_feed.stop_areas["A_P1"] == {"z1"} and fare_feed.stop_areas["B_P1"] == {"z2"}
    assert fare_feed.stop_areas["B_P2"] == {"z1"}
    two_zones = Leg("SKY", "A_P1", at(12, 0), "B_P1", at(12, 20))
    assert price_leg(fare_feed, "regular", EMPTY_STATE, two_zones).fare_fen == 465
    one_zone = Leg("SKY", "A_P1", at(12, 0), "B_P2", at(12, 20))
    assert price_leg(fare_feed, "regular", EMPTY_STATE, one_zone).fare_fen == 320


def test_rule_priority_off_peak_and_calendar_dates_exceptions(agency_feed: Path) -> None:
    fare_feed = load_feed(agency_feed)
    evening = Leg("SKY", "A_P1", at(20, 0, day=2), "B_P1", at(20, 20, day=2))
    assert price_leg(fare_feed, "regular", EMPTY_STATE, evening).fare_product_id == "off_peak"
    # 2026-12-01 is a Tuesday run as a weekend day (calendar_dates.txt): off-peak at noon.
    holiday = Leg("SKY", "A_P1", at(12, 0, day=1), "B_P1", at(12, 20, day=1))
    assert price_leg(fare_feed, "regular", EMPTY_STATE, holiday).fare_fen == 300
    # Without the exception the same Tuesday noon is peak: two zones.
    files = dict(FILES, **{"calendar_dates.txt": "service_id,date,exception_type\n"})
    plain = parse_feed(files)
    assert price_leg(plain, "regular", EMPTY_STATE, holiday).fare_fen == 465


def test_cli_prices_exit_validations_and_transfers_of_the_agency_feed(
    agency_feed: Path, tmp_path: Path
) -> None:
    taps = tmp_path / "taps.csv"
    taps.write_text(
        "route_id,card,time,card_type,stop_id,alight_stop_id,alight_time,comment\n"
        "R1,c1,2026-12-02T08:00:00+08:00,adult,BS1,,,bus\n"
        "SKY,c1,2026-12-02T08:30:00+08:00,adult,A_P1,B_P1,2026-12-02T08:50:00+08:00,transfer\n"
        "SKY,c1,2026-12-02T12:30:00+08:00,adult,A_P1,B_P1,2026-12-02T12:50:00+08:00,peak\n"
    )
    result = CliRunner().invoke(app, ["fares", "price", str(agency_feed), "--taps", str(taps)])
    assert result.exit_code == 0, result.output
    rows = [line.split(",") for line in result.output.strip().splitlines()[1:]]
    assert [r[6] for r in rows] == ["290", "0", "465"]
    assert rows[1][9].startswith("transfer_rule_row_3") and rows[2][9] == ""


def test_cli_price_wants_alight_stop_and_time_together(agency_feed: Path, tmp_path: Path) -> None:
    taps = tmp_path / "taps.csv"
    taps.write_text(
        "card,card_type,time,route_id,stop_id,alight_stop_id,alight_time\n"
        "c1,adult,2026-12-02T08:30:00+08:00,SKY,A_P1,B_P1,\n"
    )
    result = CliRunner().invoke(app, ["fares", "price", str(agency_feed), "--taps", str(taps)])
    assert result.exit_code == 2 and "row 2, field alight_time" in result.output


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("Infinity", "not a finite amount"),
        ("NaN", "not a finite amount"),
        ("1e40", "beyond what a card amount holds"),
        ("3.205", "more than 2 decimals for HKD"),
    ],
)
def test_absurd_amounts_are_named_not_crashed_on(amount: str, message: str) -> None:
    files = dict(FILES)
    files["fare_products.txt"] = FILES["fare_products.txt"].replace("4.65", amount)
    with pytest.raises(FeedInvalid) as refused:
        parse_feed(files)
    problems = refused.value.problems
    assert [(p.file, p.row, p.field) for p in problems] == [("fare_products.txt", 4, "amount")]
    assert message in problems[0].message  # and two_zone is not called "unknown" elsewhere


def test_a_currency_without_minor_units_keeps_its_caps_whole() -> None:
    files = {name: text.replace("HKD", "JPY") for name, text in FILES.items()}
    files["fare_products.txt"] = (
        "fare_product_id,amount,currency\none_zone,180,JPY\ntwo_zone,260,JPY\n"
        "off_peak,150,JPY\nbus,210,JPY\n"
    )
    files["x_fare_caps.txt"] = (
        "cap_id,rider_category_id,period,amount,currency\nday,regular,day,600,JPY\n"
    )
    fare_feed = parse_feed(files)
    assert [c.amount_fen for c in fare_feed.caps] == [600]
    files["x_fare_caps.txt"] = files["x_fare_caps.txt"].replace("600", "600.5")
    with pytest.raises(FeedInvalid, match="more than 0 decimals for JPY"):
        parse_feed(files)


def test_a_zipped_feed_loads_from_the_top_or_from_its_one_folder(tmp_path: Path) -> None:
    """Agencies publish feeds as zip files, sometimes with everything inside one folder."""
    for name, prefix in (("flat.zip", ""), ("folder.zip", "gtfs_2026/")):
        archive = tmp_path / name
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
            for file_name, text in FILES.items():
                out.writestr(prefix + file_name, "\ufeff" + text.replace("\n", "\r\n"))
        assert validate_feed(archive) == []
        assert load_feed(archive).currency == "HKD"


def test_a_zip_member_too_large_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for file_name, text in FILES.items():
            if file_name != "stop_areas.txt":
                out.writestr(file_name, text)
        out.writestr("stop_areas.txt", "area_id,stop_id\n" + "z1,BS1\n" * 1_400_000)
    problems = validate_feed(archive)
    assert [(p.file, p.row) for p in problems] == [("stop_areas.txt", 0)]
    assert "more than" in problems[0].message
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    assert "not a zip archive" in validate_feed(tmp_path / "junk.zip")[0].message
