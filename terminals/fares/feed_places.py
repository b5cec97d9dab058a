"""Readers of the where and when of a fare feed: networks, routes, areas, stops, services and
timeframes, one function per GTFS table.

Each appends its problems to the FeedReader in row order and returns typed rows; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from terminals.fares.feed_csv import FeedReader, parse_date, parse_time, unique
from terminals.fares.feed_model import Service, Timeframe

DAY_S = 86400


@dataclass(frozen=True, slots=True)
class Networks:
    """networks.txt read: its ids, and whether it lists any row (then other files must match)."""

    ids: frozenset[str]
    listed: bool


def read_networks(reader: FeedReader) -> Networks:
    """networks.txt."""
    networks_table = reader.table("networks.txt", ("network_id",))
    ids = frozenset(unique(reader, networks_table, "network_id"))
    return Networks(ids, bool(networks_table.rows))


@dataclass(frozen=True, slots=True)
class Routes:
    """routes.txt read: its route ids, their GTFS route_type and the network each names."""

    ids: frozenset[str]
    route_type: dict[str, int]
    route_network: dict[str, str]


def read_routes(reader: FeedReader) -> Routes:
    """routes.txt: route_type, and network_id when the feed puts routes in networks here."""
    routes_table = reader.table("routes.txt", ("route_id", "route_type"))
    routes = unique(reader, routes_table, "route_id")
    route_type: dict[str, int] = {}
    route_network: dict[str, str] = {}
    for route_id, (number, row) in routes.items():
        kind = reader.integer(
            "routes.txt", number, "route_type", row.get("route_type", ""), low=0, high=1702
        )
        if kind is not None:
            route_type[route_id] = kind
        if row.get("network_id"):
            route_network[route_id] = row["network_id"]
    return Routes(frozenset(routes), route_type, route_network)


def read_route_networks(
    reader: FeedReader, networks: Networks, routes: Routes
) -> tuple[dict[str, str], set[str]]:
    """route_networks.txt, merged with routes.txt's network_id: (route -> network, networks)."""
    route_network = dict(routes.route_network)
    known = set(networks.ids) | set(route_network.values())
    table = reader.table("route_networks.txt", ("network_id", "route_id"))
    if table.rows and route_network:
        reader.problem(
            "route_networks.txt", 0, "", "routes.txt already has network_id; use one or the other"
        )
    for number, row in table.rows:
        network_id = reader.required(table, number, row, "network_id")
        route_id = reader.required(table, number, row, "route_id")
        if network_id and networks.listed and network_id not in known:
            reader.problem(
                "route_networks.txt", number, "network_id", f"unknown network {network_id!r}"
            )
        if route_id and routes.ids and route_id not in routes.ids:
            reader.problem("route_networks.txt", number, "route_id", f"unknown route {route_id!r}")
        if route_id in route_network:
            reader.problem(
                "route_networks.txt", number, "route_id", f"route {route_id!r} is in two networks"
            )
            continue
        if network_id and route_id:
            route_network[route_id] = network_id
            known.add(network_id)
    return route_network, known


def read_areas(reader: FeedReader) -> set[str]:
    """areas.txt: the area ids."""
    return set(unique(reader, reader.table("areas.txt", ("area_id",)), "area_id"))


@dataclass(frozen=True, slots=True)
class Stops:
    """stops.txt read: its stop ids, whether the file has columns, and its rows (for stations)."""

    ids: frozenset[str]
    has_columns: bool
    rows: tuple[tuple[int, dict[str, str]], ...]


def read_stops(reader: FeedReader) -> Stops:
    """stops.txt: the stop ids (their stations are resolved by inherit_station_areas)."""
    stops_table = reader.table("stops.txt", ("stop_id",))
    ids = frozenset(unique(reader, stops_table, "stop_id"))
    return Stops(ids, bool(stops_table.columns), tuple(stops_table.rows))


def read_stop_areas(reader: FeedReader, areas: set[str], stops: Stops) -> dict[str, set[str]]:
    """stop_areas.txt: stop id -> the areas it is in."""
    table = reader.table("stop_areas.txt", ("area_id", "stop_id"))
    stop_areas: dict[str, set[str]] = {}
    for number, row in table.rows:
        area_id = reader.required(table, number, row, "area_id")
        stop_id = reader.required(table, number, row, "stop_id")
        if area_id and area_id not in areas:
            reader.problem("stop_areas.txt", number, "area_id", f"unknown area {area_id!r}")
        if stop_id and stops.has_columns and stop_id not in stops.ids:
            reader.problem("stop_areas.txt", number, "stop_id", f"unknown stop {stop_id!r}")
        if area_id and stop_id:
            stop_areas.setdefault(stop_id, set()).add(area_id)
    return stop_areas


def inherit_station_areas(
    reader: FeedReader, stops: Stops, stop_areas: dict[str, set[str]]
) -> dict[str, set[str]]:
    """GTFS stop_areas: a station (location_type 1) in an area puts all its platforms
    (location_type 0 or empty, parent_station = the station) there too, unless a platform
    is assigned to areas of its own."""
    inherited = dict(stop_areas)
    for number, row in stops.rows:
        stop_id, parent = row.get("stop_id", ""), row.get("parent_station", "")
        if not (stop_id and parent) or row.get("location_type", "") not in ("", "0"):
            continue
        if parent not in stops.ids:
            reader.problem("stops.txt", number, "parent_station", f"unknown stop {parent!r}")
            continue
        if stop_id not in inherited and parent in inherited:
            inherited[stop_id] = set(inherited[parent])
    return inherited


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def read_calendar(reader: FeedReader) -> dict[str, Service]:
    """calendar.txt: the weekly pattern and date range of each service."""
    calendar = reader.table("calendar.txt", ("service_id", *WEEKDAYS, "start_date", "end_date"))
    services: dict[str, Service] = {}
    for service_id, (number, row) in unique(reader, calendar, "service_id").items():
        flags = []
        for day in WEEKDAYS:
            value = row.get(day, "")
            if value not in ("0", "1"):
                reader.problem("calendar.txt", number, day, f"{value!r} is not 0 or 1")
            flags.append(value == "1")
        start = parse_date(row.get("start_date", ""))
        end = parse_date(row.get("end_date", ""))
        if start is None:
            reader.problem("calendar.txt", number, "start_date", "is not a date YYYYMMDD")
        if end is None:
            reader.problem("calendar.txt", number, "end_date", "is not a date YYYYMMDD")
        if start and end:
            if end < start:
                reader.problem("calendar.txt", number, "end_date", "is before start_date")
            services[service_id] = Service(service_id, tuple(flags), start, end)  # type: ignore[arg-type]
    return services


def read_calendar_dates(reader: FeedReader, calendar: Mapping[str, Service]) -> dict[str, Service]:
    """calendar_dates.txt: days added to or removed from a service (which may be new)."""
    exceptions = reader.table("calendar_dates.txt", ("service_id", "date", "exception_type"))
    added: dict[str, set[date]] = {}
    removed: dict[str, set[date]] = {}
    for number, row in exceptions.rows:
        service_id = reader.required(exceptions, number, row, "service_id")
        exception_day = parse_date(row.get("date", ""))
        if exception_day is None:
            reader.problem("calendar_dates.txt", number, "date", "is not a date YYYYMMDD")
            continue
        kind = row.get("exception_type", "")
        if kind == "1":
            added.setdefault(service_id, set()).add(exception_day)
        elif kind == "2":
            removed.setdefault(service_id, set()).add(exception_day)
        else:
            reader.problem(
                "calendar_dates.txt", number, "exception_type", f"{kind!r} is not 1 or 2"
            )
    services = dict(calendar)
    for service_id in set(added) | set(removed):
        base = services.get(service_id) or Service(
            service_id,
            (False,) * 7,
            date.min,
            date.min,  # type: ignore[arg-type]
        )
        services[service_id] = Service(
            service_id,
            base.weekdays,
            base.start_date,
            base.end_date,
            frozenset(added.get(service_id, set())),
            frozenset(removed.get(service_id, set())),
        )
    return services


def read_timeframes(
    reader: FeedReader, services: Mapping[str, Service]
) -> tuple[list[Timeframe], set[str]]:
    """timeframes.txt: (the valid timeframes, every timeframe group id the file names)."""
    timeframes_table = reader.table("timeframes.txt", ("timeframe_group_id", "service_id"))
    timeframes: list[Timeframe] = []
    for number, row in timeframes_table.rows:
        group = reader.required(timeframes_table, number, row, "timeframe_group_id")
        service_id = reader.required(timeframes_table, number, row, "service_id")
        span = _timeframe_span(reader, number, row)
        if span is None:
            continue
        start_s, end_s = span
        if service_id and service_id not in services:
            reader.problem(
                "timeframes.txt", number, "service_id", f"unknown service {service_id!r}"
            )
            continue
        if group and service_id:
            # GTFS: timeframes of one group and service must not overlap.
            clash = next(
                (
                    t
                    for t in timeframes
                    if t.timeframe_group_id == group
                    and t.service_id == service_id
                    and t.start_s < end_s
                    and start_s < t.end_s
                ),
                None,
            )
            if clash is not None:
                reader.problem(
                    "timeframes.txt",
                    number,
                    "start_time",
                    f"overlaps another timeframe of group {group!r} and service {service_id!r}",
                )
                continue
            timeframes.append(Timeframe(group, start_s, end_s, service_id))
    groups = {t.timeframe_group_id for t in timeframes} | {
        row.get("timeframe_group_id", "") for _, row in timeframes_table.rows
    }
    return timeframes, groups


def _timeframe_span(reader: FeedReader, number: int, row: dict[str, str]) -> tuple[int, int] | None:
    """(start_s, end_s) of a timeframes.txt row (both empty: the whole day), None if broken."""
    start_text, end_text = row.get("start_time", ""), row.get("end_time", "")
    if bool(start_text) != bool(end_text):
        reader.problem(
            "timeframes.txt",
            number,
            "end_time" if start_text else "start_time",
            "start_time and end_time must both be set or both be empty",
        )
        return None
    if not start_text:
        return 0, DAY_S
    parsed_start, parsed_end = parse_time(start_text), parse_time(end_text)
    if parsed_start is None or parsed_start >= DAY_S:
        reader.problem(
            "timeframes.txt",
            number,
            "start_time",
            f"{start_text!r} is not HH:MM:SS < 24:00:00",
        )
        return None
    if parsed_end is None or parsed_end > DAY_S:
        reader.problem(
            "timeframes.txt",
            number,
            "end_time",
            f"{end_text!r} is not HH:MM:SS <= 24:00:00",
        )
        return None
    if parsed_end <= parsed_start:
        reader.problem("timeframes.txt", number, "end_time", "end_time is not after start_time")
        return None
    return parsed_start, parsed_end


def route_stops(
    trips: Iterable[Mapping[str, str]], stop_times: Iterable[Mapping[str, str]]
) -> dict[str, frozenset[str]]:
    """route_id -> the stops its trips call at (trips.txt and stop_times.txt rows, streamed:
    a real agency's stop_times.txt has millions of rows; rows naming no known trip are ignored)."""
    trip_route = {
        row.get("trip_id", ""): row.get("route_id", "")
        for row in trips
        if row.get("trip_id") and row.get("route_id")
    }
    served: dict[str, set[str]] = {}
    for row in stop_times:
        route = trip_route.get(row.get("trip_id", ""))
        stop = row.get("stop_id", "")
        if route and stop:
            served.setdefault(route, set()).add(stop)
    return {route: frozenset(stops) for route, stops in served.items()}
