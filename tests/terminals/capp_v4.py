"""Layout 4 of the CAPP record, as validators before layout 5 wrote it (the encoder of that
release, kept to test that cards written then are still read)."""

from __future__ import annotations

import zlib
from datetime import datetime

from cardio.records import TRANSIT_RECORD_LEN, JourneyState, TransitRecord, encode_bcd_date
from terminals.capp import (
    ALIGHT_OFFSET_NONE,
    BOARD_OFFSET_MAX,
    CAP_SLOT_LEN,
    EXTENSION_MARKER,
    EXTENSION_OFFSET,
    FULL_STATE_OFFSET,
    LAST_TIMES_OFFSET,
    WINDOW_SECONDS_MAX,
    TapPlace,
    _local_naive,
    route_line_number,
)
from terminals.errors import invariant
from terminals.fares.engine import RideState
from terminals.fares.feed import CAPS_PER_CARD_MAX, id_tag

CRC_OFFSET = 124
EXTENSION_VERSION = 0x04


def encode_transit_record(state: RideState, place: TapPlace) -> bytes:
    """The 128-byte 001A record carrying `state` after a tap at `place`."""
    journey = state.journey
    open_leg = state.open_leg
    full_caps = state.full.caps if state.full is not None else ()
    slots = state.caps + full_caps
    invariant(len(slots) <= CAPS_PER_CARD_MAX, "too many cap slots for the card")
    day_caps = list(state.caps)
    if open_leg is not None:
        line, stop = open_leg.route_id, open_leg.board_stop_id
        tapped_at: datetime | None = open_leg.board_at
    else:
        line, stop = place.route_id, place.stop_id
        tapped_at = journey.last_board_at if journey else None
    standard = TransitRecord(
        state=JourneyState.ALIGHTED
        if place.alighted and open_leg is None
        else JourneyState.BOARDED,
        line=route_line_number(line),
        stop=id_tag(stop),
        direction=0,
        terminal_id=place.terminal_id,
        tapped_at=_local_naive(tapped_at) if tapped_at else None,
        fare_fen=place.fare_fen,
        fare_max_fen=open_leg.max_fare_fen if open_leg is not None else 0,
        transfers_used=min(journey.transfers, 0xFF) if journey else 0,
        journey_started_at=_local_naive(journey.started_at) if journey else None,
        cap_day=day_caps[0].period_start if day_caps else None,
        cap_spent_fen=day_caps[0].spent_fen if day_caps else 0,
        cap_rides=0,
    ).encode()
    extension = bytes((EXTENSION_MARKER, EXTENSION_VERSION))
    if journey is not None:
        extension += b"\x01" + id_tag(journey.leg_group_id).to_bytes(2, "big")
        extension += max(0, journey.paid_fen).to_bytes(4, "big")
    else:
        extension += bytes(7)
    extension += bytes((len(slots),))
    for progress in slots:
        extension += (
            id_tag(progress.cap_id).to_bytes(2, "big")
            + encode_bcd_date(progress.period_start)
            + progress.spent_fen.to_bytes(4, "big")
        )
    extension += bytes(CAP_SLOT_LEN * (CAPS_PER_CARD_MAX - len(slots)))
    window_pair = journey.window_pair_tag if journey is not None else 0
    extension += window_pair.to_bytes(2, "big")
    extension += _encode_full_state(state)
    extension += _encode_last_times(state)
    extension += bytes((1 if open_leg is not None else 0, 0))
    invariant(len(extension) == CRC_OFFSET - EXTENSION_OFFSET, "extension layout length")
    extension += zlib.crc32(extension).to_bytes(4, "big")
    record = standard[:EXTENSION_OFFSET] + extension
    record += bytes(TRANSIT_RECORD_LEN - len(record))
    invariant(len(record) == TRANSIT_RECORD_LEN, "a transit record is 128 bytes")
    return record


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


def _encode_full_state(state: RideState) -> bytes:
    """Bytes 103..116: the full-fare journey (its boarding times are the card's last tap)."""
    size = LAST_TIMES_OFFSET - FULL_STATE_OFFSET
    if state.full is None:
        return bytes(size)
    full = state.full.journey
    if full is None or state.journey is None:
        return b"\x01" + bytes(size - 1)
    invariant(full.last_board_at == state.journey.last_board_at, "one last tap for both states")
    window_s = int((full.last_board_at - full.started_at).total_seconds())
    return (
        b"\x01"
        + id_tag(full.leg_group_id).to_bytes(2, "big")
        + max(0, full.paid_fen).to_bytes(4, "big")
        + min(full.transfers, 0xFF).to_bytes(1, "big")
        + min(max(0, window_s), WINDOW_SECONDS_MAX).to_bytes(4, "big")
        + full.window_pair_tag.to_bytes(2, "big")
    )
