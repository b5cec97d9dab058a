"""The offline validator prices as the back office does: join rules (effective fare legs), two-tap
legs, forgotten tap-offs, the vehicle on the card, a line's maximum over the stops it serves and
the open-leg window per network. The validator's state goes through the real CAPP record bytes
between taps; the back office is `onecard fares price`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from terminals.capp import TapPlace, decode_transit_record, encode_transit_record
from terminals.cli import app
from terminals.errors import FeedInvalid
from terminals.fares.engine import EMPTY_STATE, RideState
from terminals.fares.feed import FareFeed, load_feed, parse_feed
from terminals.fares.feed_files import read_feed_files
from terminals.fares.sectional import StepKind, plan_tap

FEEDS = Path(__file__).parent / "feeds"
CST = timezone(timedelta(hours=8))
START = datetime(2026, 11, 30, 7, 0, tzinfo=CST)
TERMINAL = bytes.fromhex("000001000050")
runner = CliRunner()

EXTRA = {
    # every two consecutive metro legs join (not only at station X), a day cap, a transfer
    "stopless": {
        "fare_leg_join_rules.txt": "from_network_id,to_network_id,from_stop_id,to_stop_id\n"
        "metro,metro,,\n",
        "x_fare_caps.txt": "cap_id,rider_category_id,period,amount,currency\n"
        "day,adult,day,9.00,CNY\nstudent_day,student,day,4.50,CNY\n",
        "fare_transfer_rules.txt": "from_leg_group_id,to_leg_group_id,duration_limit,"
        "duration_limit_type,fare_transfer_type\nmetro,bus,3600,1,0\n",
        "rider_categories.txt": "rider_category_id,rider_category_name,is_default_fare_category\n"
        "adult,Adult,1\nstudent,Student,0\n",
        # a student pays half, and the card carries the adult's state too (the subsidy claim)
        "fare_products.txt": "fare_product_id,rider_category_id,amount,currency\n"
        "near,adult,2.00,CNY\nfar,adult,4.00,CNY\nbus_flat,adult,1.00,CNY\n"
        "near,student,1.00,CNY\nfar,student,2.00,CNY\nbus_flat,student,0.50,CNY\n",
        "x_concessions.txt": "card_type,rider_category_id\nadult,adult\nstudent,student\n",
    },
    "station": {},  # the feed as published: legs join at station X only
}


def feed_dir(tmp_path: Path, variant: str) -> Path:
    files = read_feed_files(FEEDS / "joined")
    files.update(EXTRA[variant])
    target = tmp_path / variant
    target.mkdir(exist_ok=True)
    for name, text in files.items():
        (target / name).write_text(text)
    return target


legs_strategy = st.lists(
    st.tuples(
        st.sampled_from(["m1", "m2", "b7"]),
        st.sampled_from(["a", "x1", "x2", "b"]),
        st.sampled_from(["a", "x1", "x2", "b", None]),  # None: never tapped off
        st.integers(min_value=1, max_value=90),  # minutes since the previous leg ended
        st.integers(min_value=5, max_value=60),  # minutes on board
    ),
    min_size=1,
    max_size=6,
)


class CardValidator:
    """Validators at the gates (no vehicle) and on bus b7, the card state only on the card."""

    def __init__(self, feed: FareFeed, card_type: str = "adult") -> None:
        self.feed, self.card_type = feed, card_type
        self.raw = encode_transit_record(EMPTY_STATE, TapPlace("b7", "a", TERMINAL, 0))
        self.open_owner: int | None = None
        self.full: dict[int, int] = {}  # full fare (what an adult pays) per leg

    def state(self) -> RideState:
        return decode_transit_record(self.raw, self.feed, self.card_type)

    def tap(self, route: str, stop: str, at: datetime, owner: int, charged: list[int]) -> None:
        steps = plan_tap(self.feed, self.card_type, self.state(), route, stop, at)
        for step in steps:
            if step.kind is StepKind.ON_BOARD:
                return
            who = self.open_owner if step.kind is StepKind.UNFINISHED else owner
            assert who is not None
            charged[who] += step.fare_fen
            self.full[who] = self.full.get(who, 0) + step.quote.full_fare_fen
            place = TapPlace(route, stop, TERMINAL, step.fare_fen, step.kind is StepKind.ALIGHT)
            self.raw = encode_transit_record(step.quote.state, place)
        last = steps[-1].kind
        self.open_owner = owner if last is StepKind.BOARD else None


def back_office(directory: Path, tmp_path: Path, rows: list[str]) -> list[tuple[int, int]]:
    taps = tmp_path / "taps.csv"
    taps.write_text(
        "card,card_type,time,route_id,stop_id,alight_stop_id,alight_time\n" + "".join(rows)
    )
    result = runner.invoke(app, ["fares", "price", str(directory), "--taps", str(taps)])
    assert result.exit_code == 0, result.output
    lines = [line.split(",") for line in result.output.strip().splitlines()[1:]]
    return [(int(line[6]), int(line[7])) for line in lines]  # fare, full fare


@pytest.mark.parametrize("variant", sorted(EXTRA))
def test_the_validator_charges_what_the_back_office_charges(variant, tmp_path_factory):
    directory = feed_dir(tmp_path_factory.mktemp("feed"), variant)
    feed = load_feed(directory)

    card_types = ["adult", "student"] if "student" in feed.rider_categories else ["adult"]

    @settings(max_examples=50, deadline=None)
    @given(legs=legs_strategy, card_type=st.sampled_from(card_types))
    def check(legs, card_type):
        validator = CardValidator(feed, card_type)
        charged = [0] * len(legs)
        rows = []
        now = START
        for i, (route, board, alight, gap, ride) in enumerate(legs):
            now += timedelta(minutes=gap)
            two_tap = feed.taps_off(route)
            if two_tap and alight is not None:
                off = now + timedelta(minutes=ride)
                validator.tap(route, board, now, i, charged)
                validator.tap(route, alight, off, i, charged)
                rows.append(
                    f"C,{card_type},{now.isoformat()},{route},{board},{alight},{off.isoformat()}\n"
                )
                now = off
            else:
                validator.tap(route, board, now, i, charged)
                rows.append(f"C,{card_type},{now.isoformat()},{route},{board},,\n")
                if two_tap:  # forgotten: the next tap is long after the open-leg window
                    now += timedelta(hours=5)
        if validator.open_owner is not None:  # presented once more, the next day
            then = charged + [0]
            validator.tap("b7", "a", now + timedelta(days=1), len(legs), then)
            charged = then[:-1]
        full = [validator.full.get(i, 0) for i in range(len(legs))]
        office = back_office(directory, tmp_path_factory.mktemp("taps"), rows)
        assert list(zip(charged, full, strict=True)) == office

    check()


def test_legs_joined_at_a_station_through_the_card_at_the_gates():
    feed = load_feed(FEEDS / "joined")
    validator = CardValidator(feed)
    charged = [0, 0]
    validator.tap("m1", "a", START, 0, charged)
    validator.tap("m1", "x1", START + timedelta(minutes=20), 0, charged)
    assert validator.state().run is not None  # a leg ending at X may be joined
    validator.tap("m2", "x2", START + timedelta(minutes=30), 1, charged)
    state = validator.state()
    assert state.open_leg is not None and state.open_leg.joins
    assert state.open_leg.max_fare_fen == 200  # a -> b is 4.00 in all, 2.00 already paid
    validator.tap("m2", "b", START + timedelta(minutes=50), 1, charged)
    assert charged == [200, 200]  # one far fare, not near + far


# --------------------------------------------------------------------------- vehicle, window, stops

SECTIONAL = FEEDS / "sectional"


def taps(feed, plan):
    state, out = EMPTY_STATE, []
    for route, stop, minutes, vehicle in plan:
        steps = plan_tap(
            feed, "adult", state, route, stop, START + timedelta(minutes=minutes), vehicle=vehicle
        )
        for step in steps:
            raw = encode_transit_record(
                step.quote.state,
                TapPlace(route, stop, TERMINAL, step.fare_fen, step.kind is StepKind.ALIGHT),
            )
            state = decode_transit_record(raw, feed, "adult")
        out.append([(s.kind.value, s.fare_fen) for s in steps])
    return out


def test_boarding_another_vehicle_of_the_line_is_a_forgotten_tap_off_and_a_boarding():
    feed = load_feed(SECTIONAL)
    other = taps(feed, [("900", "s1", 0, "bus-17"), ("900", "s4", 30, "bus-23")])
    assert other[1] == [("unfinished", 400), ("board", 0)]  # s1's maximum on 900, then boarding
    same = taps(feed, [("900", "s1", 0, "bus-17"), ("900", "s4", 30, "bus-17")])
    assert same[1] == [("alight", 300)]


def test_a_lines_maximum_is_over_the_stops_its_trips_serve():
    feed = load_feed(SECTIONAL)
    assert feed.stops_served("901") == {"s1", "s2", "s3", "s4"}
    # 901 never reaches zone 3: forgetting to tap off costs two zones (3.00), not three (4.00)
    assert taps(feed, [("901", "s1", 0, "a"), ("1", "s3", 60, "b")])[1][0] == ("unfinished", 300)
    assert taps(feed, [("900", "s1", 0, "a"), ("1", "s3", 60, "b")])[1][0] == ("unfinished", 400)


def test_without_stop_times_the_maximum_is_over_every_stop_with_a_notice():
    files = read_feed_files(SECTIONAL)  # fare files only: no trips.txt, no stop_times.txt
    feed = parse_feed(files)
    assert feed.stops_served("901") == feed.stops
    assert taps(feed, [("901", "s1", 0, "a"), ("1", "s3", 60, "b")])[1][0] == ("unfinished", 400)
    result = runner.invoke(app, ["fares", "validate", str(FEEDS / "joined")])
    assert "notice: stop_times.txt: no trips.txt and stop_times.txt" in result.output


def test_the_open_leg_window_is_set_per_network():
    files = read_feed_files(SECTIONAL)
    files["onecard_networks.txt"] = (
        "network_id,tap_mode,open_leg_minutes\nexpress,tap_on_off,30\nurban,tap_on,\n"
    )
    feed = parse_feed(files)
    assert feed.open_leg_window_s("900") == 1800 and feed.open_leg_window_s("1") == 4 * 3600
    late = taps(feed, [("900", "s1", 0, "bus-17"), ("900", "s4", 31, "bus-17")])
    assert late[1] == [("unfinished", 400), ("board", 0)]
    on_time = taps(feed, [("900", "s1", 0, "bus-17"), ("900", "s4", 29, "bus-17")])
    assert on_time[1] == [("alight", 300)]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("urban,tap_on,30", "only a tap_on_off network has open legs"),
        ("express,tap_on_off,0", "0 is outside 1..1440"),
        ("express,tap_on_off,soon", "'soon' is not an integer"),
    ],
)
def test_a_bad_open_leg_window_is_refused(row, message):
    files = read_feed_files(SECTIONAL)
    files["onecard_networks.txt"] = f"network_id,tap_mode,open_leg_minutes\n{row}\n"
    with pytest.raises(FeedInvalid) as refused:
        parse_feed(files)
    assert any(message in p.message for p in refused.value.problems)


def test_a_zipped_feed_gives_each_line_the_stops_its_trips_serve(tmp_path: Path):
    import zipfile

    archive = tmp_path / "agency.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(SECTIONAL.glob("*.txt")):
            out.write(path, f"gtfs/{path.name}")  # in one folder, as agencies publish them
    feed = load_feed(archive)
    assert feed.stops_served("901") == {"s1", "s2", "s3", "s4"}
    assert feed.stops_served("900") == {"s1", "s2", "s3", "s4", "s5", "s6"}
