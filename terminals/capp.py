"""The transit state on the card: onecard's use of the CAPP record 001A ("27 02 7D", 128 bytes).

Offline transfers, caps, two-tap legs and joined legs need the rider's state wherever they tap,
so it travels on the card, written by UPDATE CAPP DATA CACHE and committed atomically with the
debit. Pure byte layout (and, for a run of joined legs, the pricing that rebuilds the state after
it): no I/O. Why the bytes are spent this way: docs/fares.md, "What the 128-byte record holds".

Layout 5 (offsets in bytes). 0..50 are cardio's `TransitRecord` fields, filled so any reader of
the standard part sees the last tap; 51.. is onecard's fare-state extension:

    0   27 02 7D            record tag, record id, length
    3   01                  valid flag
    4   journey state       01 boarded, 02 alighted (the last leg's tap-off was seen)
    5   line (4)            route_id as a number when it is digits, else its 2-byte id tag:
                            the open leg's line, else the run's last leg's, else this tap's
    9   stop (2)            id tag: the open leg's boarding stop, else the run's last alighting
                            stop (state 02), else this tap's stop
    11  direction (1)       00
    12  terminal id (6)
    18  time (7 BCD)        the record's time T: the open leg's boarding, else the run's first
                            boarding, else the last leg's boarding (local Asia/Shanghai)
    25  fare charged (4)
    29  max fare (4)        the open leg's maximum fare (what a forgotten tap-off costs)
    33  transfers (1)       of the stored journey
    34  window start (7 BCD)  of the stored journey (engine Journey.started_at)
    41  cap slot 0 period start (4 BCD) and 45 its spend (4)
    49  rides (2)           00 00
    51  4F 05               extension marker 'O' and layout version 5
    53  flags               01 journey, 02 open leg, 04 run, 08 full-fare state, 10 the open leg
                            joins the run, 20 the run's legs share one network
    54  leg group tag (2), 56 journey paid (4), 60 window pair (2)
    62  last boarding (3)   seconds from the window start; 65 last alighting (2) from it (FFFF)
    67  run legs (1)
    68  slot 0 cap tag (2); 70 slots 1..3: cap tag (2), period start (2, days from 2000-01-01),
        spend (4); a tag 0 is an empty slot
    94  full-fare journey: leg group tag (2), paid (4), transfers (1), window start (3, seconds
        before the last boarding), window pair (2)
    106 open leg vehicle (3)  terminals.fares.sectional.vehicle_tag, 0: a gate
    109 run: first stop tag (2), first boarding (3, seconds before T), paid (4), full paid (4),
        last alighting (2, seconds after the first boarding, FFFF unknown)
    124 CRC-32 (4)          over bytes 51..123, big-endian

With a run the stored journey, caps and full-fare state are the state *before* the run's first
leg; the state after it is priced again from them (terminals.fares.sectional.state_after_run).
Layouts 1..4 are still read (4: CRC at 124, 3: at 117, 2: at 103, 1: at 101).

Ids are stored as 2-byte tags; the feed refuses tags that collide. A record that does not carry
the extension, fails its CRC or names ids the current feed does not know gives the empty state
(no transfer, no cap progress): the rider may pay a full fare, never less than the tariff says.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from cardio.crypto import CARD_TIME_ZONE
from cardio.errors import ApduError, ResponseMalformed
from cardio.records import (
    TRANSIT_RECORD_ID,
    TRANSIT_RECORD_LEN,
    TRANSIT_RECORD_TAG,
    JourneyState,
    TransitRecord,
    decode_bcd_date,
)
from terminals.errors import NoFare, invariant
from terminals.fares.engine import CapProgress, Journey, OpenLeg, RideState, Run
from terminals.fares.feed import CAPS_PER_CARD_MAX, FareFeed, id_tag
from terminals.fares.sectional import state_after_run

EXTENSION_OFFSET = 51
EXTENSION_MARKER = 0x4F
EXTENSION_VERSION = 0x05
DAY_ZERO = date(2000, 1, 1)
FLAG_JOURNEY, FLAG_OPEN_LEG, FLAG_RUN, FLAG_FULL, FLAG_JOINS, FLAG_SHARED = 1, 2, 4, 8, 16, 32
V5_LAST_TIMES = 62
V5_LEGS = 67
V5_SLOTS = 68
V5_FULL = 94
V5_VEHICLE = 106
V5_RUN = 109
RUN_LEN = 15
CAP_SLOT_LEN = 10
WINDOW_PAIR_OFFSET = 101
FULL_STATE_OFFSET = 103
LAST_TIMES_OFFSET = 117
OPEN_LEG_OFFSET = 122
CRC_OFFSET = 124
CRC_OFFSET_V4 = 124
CRC_OFFSET_V3 = 117
CRC_OFFSET_V2 = 103
CRC_OFFSET_V1 = 101
WINDOW_SECONDS_MAX = 0xFFFFFFFF
BOARD_OFFSET_MAX = 0xFFFFFF
ALIGHT_OFFSET_NONE = 0xFFFF


def route_line_number(route_id: str) -> int:
    if route_id.isdigit() and int(route_id) <= 0xFFFFFFFF:
        return int(route_id)
    return id_tag(route_id)


@dataclass(frozen=True, slots=True)
class TapPlace:
    """Where and by whom the state is written (for the standard part of the record)."""

    route_id: str
    stop_id: str
    terminal_id: bytes
    fare_fen: int
    alighted: bool = False  # this tap was a tap-off


def _local_naive(moment: datetime) -> datetime:
    return moment.astimezone(CARD_TIME_ZONE).replace(tzinfo=None, microsecond=0)


def _t_ref(state: RideState) -> datetime | None:
    """The record's time (standard part, 18): the open leg's boarding, else the run's first
    boarding, else the last leg's boarding."""
    if state.open_leg is not None:
        return state.open_leg.board_at
    if state.run is not None:
        return state.run.first_board_at
    return state.journey.last_board_at if state.journey is not None else None


def _days(day: date) -> int:
    days = (day - DAY_ZERO).days
    invariant(0 <= days <= 0xFFFF, "a cap period between 2000 and 2179")
    return days


def _u(value: int, size: int) -> bytes:
    return min(max(0, value), (1 << (8 * size)) - 1).to_bytes(size, "big")


def encode_transit_record(state: RideState, place: TapPlace) -> bytes:
    """The 128-byte 001A record carrying `state` after a tap at `place` (layout version 5)."""
    open_leg, run = state.open_leg, state.run
    stored = run.before if run is not None else state  # a run keeps the state before its legs
    journey = stored.journey
    full_caps = stored.full.caps if stored.full is not None else ()
    slots = stored.caps + full_caps
    invariant(len(slots) <= CAPS_PER_CARD_MAX, "too many cap slots for the card")
    invariant(run is None or open_leg is None or open_leg.joins, "an open leg and a run it ends")
    t_ref = _t_ref(state)
    alighted = place.alighted and open_leg is None
    line, stop = place.route_id, place.stop_id
    if open_leg is not None:
        line, stop = open_leg.route_id, open_leg.board_stop_id
    elif run is not None:
        line = run.route_id
        alighted = run.alight_stop_id is not None
        stop = run.alight_stop_id or place.stop_id
    first = slots[0] if slots else None
    standard = TransitRecord(
        state=JourneyState.ALIGHTED if alighted else JourneyState.BOARDED,
        line=route_line_number(line),
        stop=id_tag(stop),
        direction=0,
        terminal_id=place.terminal_id,
        tapped_at=_local_naive(t_ref) if t_ref else None,
        fare_fen=place.fare_fen,
        fare_max_fen=open_leg.max_fare_fen if open_leg is not None else 0,
        transfers_used=min(journey.transfers, 0xFF) if journey else 0,
        journey_started_at=_local_naive(journey.started_at) if journey else None,
        cap_day=first.period_start if first else None,
        cap_spent_fen=first.spent_fen if first else 0,
        cap_rides=0,
    ).encode()
    flags = (
        (FLAG_JOURNEY if journey is not None else 0)
        | (FLAG_OPEN_LEG if open_leg is not None else 0)
        | (FLAG_RUN if run is not None else 0)
        | (FLAG_FULL if stored.full is not None else 0)
        | (FLAG_JOINS if open_leg is not None and open_leg.joins else 0)
        | (FLAG_SHARED if run is not None and run.network_id else 0)
    )
    ext = bytes((EXTENSION_MARKER, EXTENSION_VERSION, flags))
    if journey is not None:
        ext += id_tag(journey.leg_group_id).to_bytes(2, "big") + _u(journey.paid_fen, 4)
        ext += journey.window_pair_tag.to_bytes(2, "big")
    else:
        ext += bytes(8)
    ext += _encode_last_times(stored)
    ext += bytes((min(run.legs, 0xFF) if run is not None else 0,))
    ext += id_tag(first.cap_id).to_bytes(2, "big") if first else bytes(2)
    for progress in slots[1:]:
        ext += id_tag(progress.cap_id).to_bytes(2, "big")
        ext += _days(progress.period_start).to_bytes(2, "big") + _u(progress.spent_fen, 4)
    ext += bytes(8 * (CAPS_PER_CARD_MAX - max(1, len(slots))))
    ext += _encode_full_v5(stored)
    ext += (open_leg.vehicle_tag if open_leg is not None else 0).to_bytes(3, "big")
    ext += _encode_run(state, t_ref)
    invariant(len(ext) == CRC_OFFSET - EXTENSION_OFFSET, "extension layout length")
    ext += zlib.crc32(ext).to_bytes(4, "big")
    record = standard[:EXTENSION_OFFSET] + ext
    invariant(len(record) == TRANSIT_RECORD_LEN, "a transit record is 128 bytes")
    return record


def _encode_run(state: RideState, t_ref: datetime | None) -> bytes:
    """Bytes 109..123: the run's first boarding (stop, seconds before the record's time), what
    its legs were charged, and (no open leg) its last alighting (seconds after the first boarding)."""
    run = state.run
    if run is None or t_ref is None:
        return bytes(RUN_LEN - 2) + ALIGHT_OFFSET_NONE.to_bytes(2, "big")
    back = int((t_ref - run.first_board_at).total_seconds())
    invariant(0 <= back < BOARD_OFFSET_MAX, "a run's first boarding within 194 days before")
    alight = ALIGHT_OFFSET_NONE
    if state.open_leg is None and run.alight_at is not None:
        seconds = int((run.alight_at - run.first_board_at).total_seconds())
        alight = seconds if 0 <= seconds < ALIGHT_OFFSET_NONE else ALIGHT_OFFSET_NONE
    return (
        id_tag(run.first_stop_id).to_bytes(2, "big")
        + back.to_bytes(3, "big")
        + _u(run.paid_fen, 4)
        + _u(run.full_paid_fen, 4)
        + alight.to_bytes(2, "big")
    )


def _encode_last_times(state: RideState) -> bytes:
    """Bytes 117..121: the last leg's boarding and alighting, relative to the window start."""
    journey = state.journey
    if journey is None:
        return BOARD_OFFSET_MAX.to_bytes(3, "big") + ALIGHT_OFFSET_NONE.to_bytes(2, "big")
    board_s = int((journey.last_board_at - journey.started_at).total_seconds())
    alight_s = ALIGHT_OFFSET_NONE
    if journey.last_alight_at is not None:
        alight_s = int((journey.last_alight_at - journey.last_board_at).total_seconds())
        alight_s = alight_s if 0 <= alight_s < ALIGHT_OFFSET_NONE else ALIGHT_OFFSET_NONE
    return min(max(0, board_s), BOARD_OFFSET_MAX - 1).to_bytes(3, "big") + alight_s.to_bytes(
        2, "big"
    )


def _encode_full_v5(state: RideState) -> bytes:
    """Bytes 94..105: the full-fare journey (its boarding times are the card's last leg's)."""
    full = state.full.journey if state.full is not None else None
    if full is None or state.journey is None:
        return bytes(12)
    invariant(full.last_board_at == state.journey.last_board_at, "one last tap for both states")
    window_s = int((full.last_board_at - full.started_at).total_seconds())
    return (
        id_tag(full.leg_group_id).to_bytes(2, "big")
        + _u(full.paid_fen, 4)
        + min(full.transfers, 0xFF).to_bytes(1, "big")
        + min(max(0, window_s), BOARD_OFFSET_MAX).to_bytes(3, "big")
        + full.window_pair_tag.to_bytes(2, "big")
    )


def _decode_full_journey(
    body: bytes,
    groups: dict[int, str],
    last_board_at: datetime | None,
    last_alight_at: datetime | None,
) -> Journey | None:
    at = FULL_STATE_OFFSET - EXTENSION_OFFSET
    group = groups.get(int.from_bytes(body[at + 1 : at + 3], "big"))
    if group is None or last_board_at is None:
        return None
    window_s = int.from_bytes(body[at + 8 : at + 12], "big")
    return Journey(
        leg_group_id=group,
        started_at=last_board_at - timedelta(seconds=window_s),
        last_board_at=last_board_at,
        last_alight_at=last_alight_at,
        transfers=body[at + 7],
        paid_fen=int.from_bytes(body[at + 3 : at + 7], "big"),
        window_pair_tag=int.from_bytes(body[at + 12 : at + 14], "big"),
    )


def _extension(raw: bytes) -> tuple[int, bytes] | None:
    """(layout version, extension body without its CRC), None if absent or corrupt."""
    if (
        len(raw) != TRANSIT_RECORD_LEN
        or raw[0] != TRANSIT_RECORD_TAG
        or raw[1] != TRANSIT_RECORD_ID
        or raw[EXTENSION_OFFSET] != EXTENSION_MARKER
    ):
        return None
    version = raw[EXTENSION_OFFSET + 1]
    crc_offset = {
        EXTENSION_VERSION: CRC_OFFSET,
        0x04: CRC_OFFSET_V4,
        0x03: CRC_OFFSET_V3,
        0x02: CRC_OFFSET_V2,
        0x01: CRC_OFFSET_V1,
    }.get(version)
    if crc_offset is None:
        return None
    extension = raw[EXTENSION_OFFSET : crc_offset + 4]
    body, crc = extension[:-4], int.from_bytes(extension[-4:], "big")
    if zlib.crc32(body) != crc:
        return None
    return version, body


def _last_times(
    version: int, body: bytes, standard: TransitRecord
) -> tuple[datetime | None, datetime | None]:
    """The last leg's boarding and alighting (aware), from v4's offsets or v1-3's record time."""
    started = standard.journey_started_at
    if version < EXTENSION_VERSION:
        tapped = standard.tapped_at
        return (tapped.replace(tzinfo=CARD_TIME_ZONE) if tapped else None), None
    at = LAST_TIMES_OFFSET - EXTENSION_OFFSET
    board_s = int.from_bytes(body[at : at + 3], "big")
    alight_s = int.from_bytes(body[at + 3 : at + 5], "big")
    if started is None or board_s == BOARD_OFFSET_MAX:
        return None, None
    board = started.replace(tzinfo=CARD_TIME_ZONE) + timedelta(seconds=board_s)
    alight = None if alight_s == ALIGHT_OFFSET_NONE else board + timedelta(seconds=alight_s)
    return board, alight


def _decode_open_leg(
    version: int, body: bytes, standard: TransitRecord, feed: FareFeed
) -> OpenLeg | None:
    """The leg boarded and not tapped off; None if none, or if the feed no longer knows its
    line or stop (the rider is then not charged for it: never more than the tariff says)."""
    if version < EXTENSION_VERSION or body[OPEN_LEG_OFFSET - EXTENSION_OFFSET] != 1:
        return None
    if standard.tapped_at is None:
        return None
    routes = {route_line_number(r): r for r in sorted(feed.routes)}
    stops = {id_tag(s): s for s in sorted(feed.stops | set(feed.stop_areas))}
    route_id, stop_id = routes.get(standard.line), stops.get(standard.stop)
    if route_id is None or stop_id is None:
        return None
    return OpenLeg(
        route_id,
        stop_id,
        standard.tapped_at.replace(tzinfo=CARD_TIME_ZONE),
        standard.fare_max_fen,
    )


def _decode_caps(body: bytes, feed: FareFeed) -> list[CapProgress]:
    caps = {id_tag(c.cap_id): c.cap_id for c in feed.caps}
    progress: list[CapProgress] = []
    count = min(body[9], CAPS_PER_CARD_MAX)
    for slot in range(count):
        start = 10 + slot * CAP_SLOT_LEN
        cap_id = caps.get(int.from_bytes(body[start : start + 2], "big"))
        try:
            period: date | None = decode_bcd_date(body[start + 2 : start + 6], "cap period")
        except ResponseMalformed:
            period = None
        if cap_id is None or period is None:
            continue
        progress.append(
            CapProgress(cap_id, period, int.from_bytes(body[start + 6 : start + 10], "big"))
        )
    return sorted(progress, key=lambda p: p.cap_id)


def decode_transit_record(raw: bytes, feed: FareFeed, card_type: str | None = None) -> RideState:
    """The fare state a 001A record carries (the empty state if it carries none we can trust).

    A record holding a run of joined legs keeps the state before them: the state after is priced
    again from it, for the card's `card_type` (needed then)."""
    found = _extension(raw)
    if found is None:
        return RideState()
    version, body = found
    if version == EXTENSION_VERSION:
        try:
            standard = TransitRecord.parse(raw)
        except (ApduError, ResponseMalformed):
            return RideState()
        return _decode_v5(body, standard, feed, card_type)
    return _decode_legacy(version, body, raw, feed)


def _decode_legacy(version: int, body: bytes, raw: bytes, feed: FareFeed) -> RideState:
    """Layouts 1..4."""
    window_pair = 0
    if version >= 0x02:
        at = WINDOW_PAIR_OFFSET - EXTENSION_OFFSET
        window_pair = int.from_bytes(body[at : at + 2], "big")
    try:
        standard = TransitRecord.parse(raw)
    except (ApduError, ResponseMalformed):
        return RideState()
    groups = {id_tag(g): g for g in feed.leg_groups}
    last_board_at, last_alight_at = _last_times(version, body, standard)
    journey = None
    if body[2] == 1 and last_board_at is not None and standard.journey_started_at is not None:
        group = groups.get(int.from_bytes(body[3:5], "big"))
        if group is not None:
            journey = Journey(
                leg_group_id=group,
                started_at=standard.journey_started_at.replace(tzinfo=CARD_TIME_ZONE),
                last_board_at=last_board_at,
                last_alight_at=last_alight_at,
                transfers=standard.transfers_used,
                paid_fen=int.from_bytes(body[5:9], "big"),
                window_pair_tag=window_pair,
            )
    own = _decode_caps(body, feed)
    open_leg = _decode_open_leg(version, body, standard, feed)
    if version < 0x03 or body[FULL_STATE_OFFSET - EXTENSION_OFFSET] != 1:
        return RideState(journey, tuple(own), None, open_leg)
    # The default category's caps are the full-fare state's; the card's own are the others.
    default = feed.default_rider_category
    category = {c.cap_id: c.rider_category_id for c in feed.caps}
    full_caps = tuple(p for p in own if category.get(p.cap_id) == default)
    own_caps = tuple(p for p in own if category.get(p.cap_id) != default)
    if last_board_at is None and standard.tapped_at is not None:
        last_board_at = standard.tapped_at.replace(tzinfo=CARD_TIME_ZONE)
    full_journey = _decode_full_journey(body, groups, last_board_at, last_alight_at)
    return RideState(journey, own_caps, RideState(full_journey, full_caps), open_leg)


def _at(body: bytes, offset: int, size: int) -> int:
    start = offset - EXTENSION_OFFSET
    return int.from_bytes(body[start : start + size], "big")


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=CARD_TIME_ZONE) if moment is not None else None


def _decode_v5(
    body: bytes, standard: TransitRecord, feed: FareFeed, card_type: str | None
) -> RideState:
    flags = body[2]
    groups = {id_tag(g): g for g in feed.leg_groups}
    stops = {id_tag(s): s for s in sorted(feed.stops | set(feed.stop_areas))}
    routes = {route_line_number(r): r for r in sorted(feed.routes)}
    t_ref, started = _aware(standard.tapped_at), _aware(standard.journey_started_at)
    last_board = last_alight = None
    board_s, alight_s = _at(body, V5_LAST_TIMES, 3), _at(body, V5_LAST_TIMES + 3, 2)
    if started is not None and board_s != BOARD_OFFSET_MAX:
        last_board = started + timedelta(seconds=board_s)
        if alight_s != ALIGHT_OFFSET_NONE:
            last_alight = last_board + timedelta(seconds=alight_s)
    journey = None
    group = groups.get(_at(body, 54, 2))
    if flags & FLAG_JOURNEY and group and started is not None and last_board is not None:
        journey = Journey(
            leg_group_id=group,
            started_at=started,
            last_board_at=last_board,
            last_alight_at=last_alight,
            transfers=standard.transfers_used,
            paid_fen=_at(body, 56, 4),
            window_pair_tag=_at(body, 60, 2),
        )
    caps_by_tag = {id_tag(c.cap_id): c.cap_id for c in feed.caps}
    slots: list[CapProgress] = []
    first = caps_by_tag.get(_at(body, V5_SLOTS, 2))
    if first is not None and standard.cap_day is not None:
        slots.append(CapProgress(first, standard.cap_day, standard.cap_spent_fen))
    for slot in range(1, CAPS_PER_CARD_MAX):
        at = V5_SLOTS + 2 + (slot - 1) * 8
        cap_id = caps_by_tag.get(_at(body, at, 2))
        if cap_id is not None:
            day = DAY_ZERO + timedelta(days=_at(body, at + 2, 2))
            slots.append(CapProgress(cap_id, day, _at(body, at + 4, 4)))
    slots.sort(key=lambda p: p.cap_id)
    full = None
    if flags & FLAG_FULL:
        default = feed.default_rider_category
        category = {c.cap_id: c.rider_category_id for c in feed.caps}
        full_caps = tuple(p for p in slots if category.get(p.cap_id) == default)
        slots = [p for p in slots if category.get(p.cap_id) != default]
        full_journey = None
        full_group = groups.get(_at(body, V5_FULL, 2))
        if full_group is not None and last_board is not None:
            full_journey = Journey(
                leg_group_id=full_group,
                started_at=last_board - timedelta(seconds=_at(body, V5_FULL + 7, 3)),
                last_board_at=last_board,
                last_alight_at=last_alight,
                transfers=_at(body, V5_FULL + 6, 1),
                paid_fen=_at(body, V5_FULL + 2, 4),
                window_pair_tag=_at(body, V5_FULL + 10, 2),
            )
        full = RideState(full_journey, full_caps)
    stored = RideState(journey, tuple(slots), full)
    route_id, stop_id = routes.get(standard.line), stops.get(standard.stop)
    open_leg = None
    if flags & FLAG_OPEN_LEG and t_ref is not None and route_id and stop_id:
        open_leg = OpenLeg(
            route_id,
            stop_id,
            t_ref,
            standard.fare_max_fen,
            _at(body, V5_VEHICLE, 3),
            bool(flags & FLAG_JOINS),
        )
    if not flags & FLAG_RUN or t_ref is None or route_id is None:
        return replace(stored, open_leg=open_leg)
    first_stop = stops.get(_at(body, V5_RUN, 2))
    if first_stop is None:
        return replace(stored, open_leg=open_leg)
    first_at = t_ref - timedelta(seconds=_at(body, V5_RUN + 2, 3))
    alight_s = _at(body, V5_RUN + 13, 2)
    alighted = open_leg is None and standard.state is JourneyState.ALIGHTED
    run = Run(
        before=stored,
        first_stop_id=first_stop,
        first_board_at=first_at,
        route_id=route_id,
        network_id=feed.route_network.get(route_id, "") if flags & FLAG_SHARED else "",
        alight_stop_id=stop_id if alighted else None,
        alight_at=None
        if alight_s == ALIGHT_OFFSET_NONE
        else first_at + timedelta(seconds=alight_s),
        paid_fen=_at(body, V5_RUN + 5, 4),
        full_paid_fen=_at(body, V5_RUN + 9, 4),
        legs=max(1, body[V5_LEGS - EXTENSION_OFFSET]),
    )
    if open_leg is not None:  # the open leg joins the run: the state before it is the card's
        return replace(stored, open_leg=open_leg, run=run)
    invariant(card_type is not None, "a record with joined legs is read for a card type")
    try:
        after = state_after_run(feed, card_type or "", run, route_id)
    except NoFare:  # the feed no longer prices those legs: start afresh, never charge more
        return stored
    return replace(after, run=run)
