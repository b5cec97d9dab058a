"""A synthetic month of bus boardings with its ground truth, for tests, the demo and benchmarks.

Riders commute between a home and a work stop (directly or with one transfer), concession riders
travel off-peak, weekends are quieter, one line grows through the month and every line has its own
good and bad days. The truth (boardings per line and day, trips per origin-destination pair) is counted as
the taps are made. `load_taps` writes them where clearing puts cleared taps (tap_records +
cleared_taps) with asyncpg COPY; never used on the production path.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

# The lines of the sample feed and the stops each serves (in order along the line).
LINES: dict[str, tuple[str, ...]] = {
    "1": ("railway_station", "west_park", "old_town"),
    "2": ("university", "east_market", "hospital"),
    "3": ("east_market", "old_town", "west_park"),
    "5": ("airport_road", "west_park", "monastery"),
    "601": ("old_town", "valley_town"),
}
# Commutes: legs of (line, from stop, to stop); two legs = a transfer at the middle stop.
COMMUTES: tuple[tuple[tuple[str, str, str], ...], ...] = (
    (("1", "railway_station", "old_town"),),
    (("2", "university", "hospital"),),
    (("3", "east_market", "west_park"),),
    (("5", "airport_road", "monastery"),),
    (("601", "valley_town", "old_town"),),
    (("1", "railway_station", "old_town"), ("601", "old_town", "valley_town")),
    (("5", "monastery", "west_park"), ("3", "west_park", "east_market")),
)
CARD_TYPES = (("adult", 0.7), ("student", 0.15), ("senior", 0.15))
GROWING_LINE = "2"  # +3 % a week over the month


@dataclass(frozen=True, slots=True)
class SynthTap:
    card_no: str
    card_type: str
    route_id: str
    stop_id: str
    occurred_at: datetime
    business_day: date
    transfer: bool


@dataclass
class Truth:
    boardings_line_day: Counter[tuple[str, date]] = field(default_factory=Counter)
    trips_od: Counter[tuple[str, str]] = field(default_factory=Counter)  # inferable trips
    trips: int = 0
    trips_inferable: int = 0


@dataclass(frozen=True, slots=True)
class Rider:
    card_no: str
    card_type: str
    legs: tuple[tuple[str, str, str], ...]
    leave_h: float  # hour the rider leaves home
    return_h: float


def make_riders(count: int, rng: random.Random) -> list[Rider]:
    riders: list[Rider] = []
    types = [card_type for card_type, _ in CARD_TYPES]
    weights = [weight for _, weight in CARD_TYPES]
    for i in range(count):
        card_type = rng.choices(types, weights)[0]
        off_peak = card_type == "senior"
        riders.append(
            Rider(
                card_no=f"{3100_0000_0000_0000 + i:016d}",
                card_type=card_type,
                legs=rng.choice(COMMUTES),
                leave_h=rng.uniform(9.5, 11) if off_peak else rng.uniform(6.5, 9),
                return_h=rng.uniform(14, 16) if off_peak else rng.uniform(16.5, 19.5),
            )
        )
    return riders


def _travels(rider: Rider, day: date, index: int, weather: float, rng: random.Random) -> bool:
    weekend = day.isoweekday() >= 6
    p = (0.35 if weekend else 0.85) * weather
    if rider.legs[0][0] == GROWING_LINE:
        p *= 1 + 0.03 * index / 7
    return rng.random() < min(p, 1.0)


def _day_legs(rider: Rider, one_way: bool) -> list[tuple[tuple[str, str, str], float]]:
    out = [(leg, rider.leave_h + 0.5 * i) for i, leg in enumerate(rider.legs)]
    if not one_way:
        back = [(route, to, frm) for route, frm, to in reversed(rider.legs)]
        out += [(leg, rider.return_h + 0.5 * i) for i, leg in enumerate(back)]
    return out


def month(
    riders: int, start: date, days: int = 30, seed: int = 7, timezone: str = "Asia/Shanghai"
) -> tuple[list[SynthTap], Truth]:
    """The taps of `riders` riders over `days` days from `start`, and their truth."""
    rng = random.Random(seed)
    zone = ZoneInfo(timezone)
    people = make_riders(riders, rng)
    truth = Truth()
    taps: list[SynthTap] = []
    for index in range(days):
        day = start + timedelta(days=index)
        # Each line has its own good and bad days (weather, roadworks, events).
        mood = {line: rng.uniform(0.8, 1.2) for line in LINES}
        for rider in people:
            if not _travels(rider, day, index, mood[rider.legs[0][0]], rng):
                continue
            one_way = rng.random() < 0.1  # went home some other way: last trip not inferable
            legs = _day_legs(rider, one_way)
            for number, ((route, frm, to), hour) in enumerate(legs):
                local = datetime.combine(day, datetime.min.time(), zone) + timedelta(hours=hour)
                taps.append(
                    SynthTap(
                        rider.card_no,
                        rider.card_type,
                        route,
                        frm,
                        local.astimezone(UTC),
                        day,
                        transfer=number % len(rider.legs) != 0,
                    )
                )
                truth.boardings_line_day[(route, day)] += 1
                truth.trips += 1
                if not (one_way and number == len(legs) - 1):
                    truth.trips_inferable += 1
                    truth.trips_od[(frm, to)] += 1
    return taps, truth


TERMINAL_ID = "5E5E5E5E5E5E"


def _records(taps: Iterable[SynthTap], first_id: int, batch_pk: int) -> Iterator[tuple]:
    # Card counters start past every earlier load's (first_id grows by each load's size).
    counters: Counter[str] = Counter()
    now = datetime.now(UTC)
    for i, tap in enumerate(taps):
        counters[tap.card_no] += 1
        fare_rule = "flat|transfer" if tap.transfer else "flat"
        yield (
            first_id + i, batch_pk, i, TERMINAL_ID, "purchase", "complete", first_id + i,
            tap.card_no, first_id + counters[tap.card_no], 6, 200, 10_000, 9_800, tap.occurred_at, None,
            tap.card_type, tap.card_type, 200, fare_rule, tap.route_id, tap.stop_id, 0, None,
            None, False, 0, 0, "cleared", None, now, now,
        )  # fmt: skip


TAP_RECORD_COLUMNS = (
    "id", "batch_pk", "record_index", "terminal_id", "kind", "status", "terminal_seq", "card_no",
    "card_counter", "txn_type", "amount_fen", "balance_before_fen", "balance_after_fen",
    "occurred_at", "tac", "card_type", "rider_category", "full_fare_fen", "fare_rule", "route_id",
    "stop_id", "insured_fen", "visit_id", "load_id", "offline_fallback", "deny_list_version",
    "action_list_version", "state", "quarantine_reason", "received_at", "state_changed_at",
)  # fmt: skip

_CLEARED_FROM_RECORDS = """
INSERT INTO cleared_taps (card_no, purse, card_counter, tap_record_id, terminal_id, terminal_seq,
  participant_code, kind, txn_type, card_type, route_id, amount_fen, balance_before_fen,
  balance_after_fen, full_fare_fen, subsidy_fen, insured_fen, occurred_at, business_day,
  settlement_day, outcome, run_id, cleared_at)
SELECT card_no, 'offline', card_counter, id, terminal_id, terminal_seq, 'synthetic_bus', kind,
  txn_type, card_type, route_id, amount_fen, balance_before_fen, balance_after_fen,
  full_fare_fen, 0, 0, occurred_at, (occurred_at AT TIME ZONE $2)::date,
  (occurred_at AT TIME ZONE $2)::date, 'posted', 0, now()
FROM tap_records WHERE batch_pk = $1
"""


async def prepare_source(connection: asyncpg.Connection) -> int:
    """The synthetic operator, bus and upload batch the taps hang off; the batch's id."""
    await connection.execute(
        "INSERT INTO participants (code, name, kind, commission_bp, bank_account, bank_name,"
        " status, created_at) VALUES ('synthetic_bus', 'Synthetic Bus', 'bus_operator', 0,"
        " '0', 'none', 'active', now()) ON CONFLICT (code) DO NOTHING"
    )
    await connection.execute(
        "INSERT INTO terminals (terminal_id, participant_id, kind, public_key, status, created_at)"
        " SELECT $1, id, 'bus', '', 'active', now() FROM participants"
        " WHERE code = 'synthetic_bus' ON CONFLICT (terminal_id) DO NOTHING",
        TERMINAL_ID,
    )
    return await connection.fetchval(
        "INSERT INTO ingest_batches (terminal_id, batch_id, body, body_sha256, record_count,"
        " amount_fen_total, received_at) VALUES ($1, gen_random_uuid()::text, '', '', 0, 0,"
        " now()) RETURNING id",
        TERMINAL_ID,
    )


async def load_taps(
    connection: asyncpg.Connection, taps: Iterable[SynthTap], timezone: str = "Asia/Shanghai"
) -> int:
    """Write the taps as cleared bus taps in one transaction; the number written."""
    async with connection.transaction():
        batch_pk = await prepare_source(connection)
        first_id = await connection.fetchval("SELECT coalesce(max(id), 0) + 1 FROM tap_records")
        await connection.copy_records_to_table(
            "tap_records", records=_records(taps, first_id, batch_pk), columns=TAP_RECORD_COLUMNS
        )
        status = await connection.execute(_CLEARED_FROM_RECORDS, batch_pk, timezone)
    return int(status.split()[-1])


async def remove_synthetic(connection: asyncpg.Connection) -> None:
    """Delete what `load_taps` wrote (every synthetic batch)."""
    async with connection.transaction():
        await connection.execute(
            "DELETE FROM cleared_taps WHERE participant_code = 'synthetic_bus'"
        )
        await connection.execute("DELETE FROM tap_records WHERE terminal_id = $1", TERMINAL_ID)
        await connection.execute("DELETE FROM ingest_batches WHERE terminal_id = $1", TERMINAL_ID)
