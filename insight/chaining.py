"""Trip chaining: where a tap-on-only trip ended, inferred from the rider's next boarding.

Rules (the SQL in insight.repository applies the same ones, on every rider-day at once):
1. A trip's target is the stop of the rider's next boarding that day; the last trip's target is
   the day's first boarding stop (riders usually end the day where they began it).
2. The trip alighted at the stop served by its line that is nearest to the target, if that stop
   is within the walking distance; the stops a line serves are those where it was boarded.
3. A trip whose inferred alighting is its own boarding stop (a one-trip day, a round trip on
   one line) or that no stop of its line is near has no inferred destination.
No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)


@dataclass(frozen=True, slots=True)
class Boarding:
    """One tap-on: the line, the stop and when."""

    route_id: str
    stop_id: str
    at: datetime


Coordinates = Mapping[str, tuple[float, float]]  # stop_id -> (lat, lon) in degrees
AlightTable = Mapping[tuple[str, str], str]  # (route_id, target stop) -> alighting stop


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance in metres."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def alight_stop(
    route_stops: Iterable[str], target: str, coords: Coordinates, walk_m_max: float
) -> str | None:
    """Rule 2: the stop of the line nearest to `target` within walking distance (ties: the
    smallest stop id, so the answer never depends on the order stops come in)."""
    if target not in coords:
        return None
    best: tuple[float, str] | None = None
    for stop in route_stops:
        if stop not in coords:
            continue
        candidate = (distance_m(coords[stop], coords[target]), stop)
        if candidate[0] <= walk_m_max and (best is None or candidate < best):
            best = candidate
    return None if best is None else best[1]


def alight_table(
    route_stops: Mapping[str, frozenset[str]], coords: Coordinates, walk_m_max: float
) -> dict[tuple[str, str], str]:
    """Rule 2 for every line and every stop of the feed as a target (small: lines x stops)."""
    table: dict[tuple[str, str], str] = {}
    for route, stops in route_stops.items():
        for target in coords:
            stop = alight_stop(stops, target, coords, walk_m_max)
            if stop is not None:
                table[(route, target)] = stop
    return table


def destinations(day: Sequence[Boarding], alight: AlightTable) -> list[str | None]:
    """Rules 1 and 3 for one rider's boardings of one day, in time order."""
    if not day:
        return []
    first = day[0].stop_id
    out: list[str | None] = []
    for index, boarding in enumerate(day):
        target = day[index + 1].stop_id if index + 1 < len(day) else first
        stop = alight.get((boarding.route_id, target))
        out.append(None if stop is None or stop == boarding.stop_id else stop)
    return out
