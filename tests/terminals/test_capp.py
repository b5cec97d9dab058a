"""The CAPP transit-state layout round-trips and never trusts a damaged record."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from cardio.crypto import CARD_TIME_ZONE
from cardio.records import TransitRecord
from terminals.capp import TapPlace, decode_transit_record, encode_transit_record
from terminals.fares.engine import CapProgress, Journey, RideState
from terminals.fares.feed import load_sample_feed

from .capp_v4 import encode_transit_record as encode_v4

FEED = load_sample_feed()
PLACE = TapPlace("601", "valley_town", bytes.fromhex("000001000050"), 300)

moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2090, 1, 1)).map(
    lambda d: d.replace(microsecond=0, tzinfo=CARD_TIME_ZONE)
)


@st.composite
def states(draw):
    journey = None
    if draw(st.booleans()):
        start = draw(moments)
        journey = Journey(
            draw(st.sampled_from(sorted(FEED.leg_groups))),
            start,
            start + timedelta(minutes=draw(st.integers(0, 300))),
            None,
            draw(st.integers(0, 255)),
            draw(st.integers(0, 2**32 - 1)),
            window_pair_tag=draw(st.integers(0, 0xFFFF)),
        )
    caps = draw(
        st.lists(st.sampled_from(sorted(c.cap_id for c in FEED.caps)), unique=True, max_size=3)
    )
    progress = tuple(
        CapProgress(
            cap, draw(st.dates(date(2020, 1, 1), date(2090, 1, 1))), draw(st.integers(0, 2**32 - 1))
        )
        for cap in sorted(caps)
    )
    return RideState(journey, progress)


@settings(max_examples=200, deadline=None)
@given(states())
def test_state_round_trips_through_the_128_byte_record(state):
    raw = encode_transit_record(state, PLACE)
    assert len(raw) == 128
    assert decode_transit_record(raw, FEED) == state
    standard = TransitRecord.parse(raw)  # cardio's reader still understands the standard part
    assert standard.line == 601 and standard.fare_fen == 300


@settings(max_examples=100, deadline=None)
@given(states(), st.integers(51, 120), st.integers(1, 255))
def test_a_damaged_extension_gives_the_empty_state(state, offset, flip):
    raw = bytearray(encode_transit_record(state, PLACE))
    raw[offset] ^= flip
    assert decode_transit_record(bytes(raw), FEED) == RideState()


def test_a_blank_card_record_is_the_empty_state():
    blank = bytes((0x27, 0x02, 0x7D)) + bytes(125)
    assert decode_transit_record(blank, FEED) == RideState()


def test_a_layout_1_record_is_still_read_with_no_window_pair():
    """Cards written before layout 2 keep their transfer and cap state after the upgrade."""
    import zlib

    start = datetime(2026, 11, 30, 8, 0, tzinfo=CARD_TIME_ZONE)
    journey = Journey(sorted(FEED.leg_groups)[0], start, start, None, 1, 200, window_pair_tag=7)
    raw = bytearray(encode_v4(RideState(journey), PLACE))
    raw[52] = 0x01
    raw[101:107] = zlib.crc32(bytes(raw[51:101])).to_bytes(4, "big") + bytes(2)
    decoded = decode_transit_record(bytes(raw), FEED)
    assert decoded.journey is not None and decoded.journey.window_pair_tag == 0
    assert decoded.journey.paid_fen == 200 and decoded.journey.transfers == 1


def _caps(draw, category: str) -> tuple[CapProgress, ...]:
    ids = sorted(c.cap_id for c in FEED.caps if c.rider_category_id == category)
    chosen = draw(st.lists(st.sampled_from(ids), unique=True)) if ids else []
    return tuple(
        CapProgress(
            cap, draw(st.dates(date(2020, 1, 1), date(2090, 1, 1))), draw(st.integers(0, 9999))
        )
        for cap in sorted(chosen)
    )


@st.composite
def concession_states(draw):
    """A student card's state: its own journey and caps, and the adult's (full-fare) ones."""
    last = draw(moments)
    groups = sorted(FEED.leg_groups)

    def journey() -> Journey:
        return Journey(
            draw(st.sampled_from(groups)),
            last - timedelta(seconds=draw(st.integers(0, 10**6))),
            last,
            None,
            draw(st.integers(0, 255)),
            draw(st.integers(0, 2**32 - 1)),
            window_pair_tag=draw(st.integers(0, 0xFFFF)),
        )

    full = RideState(journey() if draw(st.booleans()) else None, _caps(draw, "adult"))
    return RideState(journey(), _caps(draw, "student"), full)


@settings(max_examples=200, deadline=None)
@given(concession_states())
def test_a_concession_cards_full_fare_state_round_trips(state):
    raw = encode_transit_record(state, PLACE)
    assert len(raw) == 128
    assert decode_transit_record(raw, FEED) == state


def test_a_layout_2_record_is_still_read_with_no_full_fare_state():
    """Cards written before layout 3 keep their own state; the full fare starts afresh."""
    import zlib

    start = datetime(2026, 11, 30, 8, 0, tzinfo=CARD_TIME_ZONE)
    journey = Journey(sorted(FEED.leg_groups)[0], start, start, None, 1, 200, window_pair_tag=7)
    full = RideState(journey, (CapProgress("adult_day", start.date(), 200),))
    raw = bytearray(encode_v4(RideState(journey, (), full), PLACE))
    raw[52] = 0x02
    raw[103:121] = zlib.crc32(bytes(raw[51:103])).to_bytes(4, "big") + bytes(14)
    decoded = decode_transit_record(bytes(raw), FEED)
    assert decoded.journey == journey and decoded.full is None
    assert decoded.caps == (CapProgress("adult_day", start.date(), 200),)  # one slot, as before


@settings(max_examples=100, deadline=None)
@given(concession_states())
def test_a_layout_4_record_written_before_the_upgrade_reads_the_same(state):
    """Cards written by layout-4 validators keep their whole state under layout 5."""
    assert decode_transit_record(encode_v4(state, PLACE), FEED) == state
