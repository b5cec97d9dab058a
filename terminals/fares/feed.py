"""Load and validate a GTFS-Fares v2 feed (plus the onecard extension files) into frozen values.

A broken feed is refused as a whole, with every problem named by file, row and field; this
module never prices anything and never does I/O beyond reading the feed directory. The values
live in feed_model, the per-table readers in feed_tables, the cross-table checks in feed_checks.
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from importlib import resources
from pathlib import Path

from terminals.errors import FeedInvalid
from terminals.fares import feed_checks, feed_legs, feed_places, feed_tables
from terminals.fares.feed_csv import AMOUNT_MINOR_MAX, WIRE_ID_MAX, FeedReader
from terminals.fares.feed_files import FEED_FILES, read_feed_files, read_route_stops
from terminals.fares.feed_model import (
    CAPS_PER_CARD_MAX,
    CURRENCY_DECIMALS_NOT_2,
    FEED_FILE_BYTES_MAX,
    FEED_ROWS_MAX,
    TIMEZONE_DEFAULT,
    CapPeriod,
    CardType,
    DurationLimitType,
    FareCap,
    FareFeed,
    FareLegJoinRule,
    FareLegRule,
    FareMedia,
    FareProductPrice,
    FareTransferRule,
    FareTransferType,
    FeedProblem,
    RiderCategory,
    Service,
    Timeframe,
    currency_decimals,
    id_tag,
)

__all__ = [
    "AMOUNT_MINOR_MAX",
    "CAPS_PER_CARD_MAX",
    "CURRENCY_DECIMALS_NOT_2",
    "FEED_FILES",
    "FEED_FILE_BYTES_MAX",
    "FEED_ROWS_MAX",
    "TIMEZONE_DEFAULT",
    "WIRE_ID_MAX",
    "CapPeriod",
    "CardType",
    "DurationLimitType",
    "FareCap",
    "FareFeed",
    "FareLegJoinRule",
    "FareLegRule",
    "FareMedia",
    "FareProductPrice",
    "FareTransferRule",
    "FareTransferType",
    "FeedProblem",
    "FeedReport",
    "LoadedFeed",
    "RiderCategory",
    "Service",
    "Timeframe",
    "check_feed",
    "currency_decimals",
    "feed_warnings",
    "id_tag",
    "load_feed",
    "load_sample_feed",
    "parse_feed",
    "parse_feed_report",
    "read_feed",
    "sample_feed_dir",
    "service_day_seconds",
    "validate_feed",
]


SKIP_PASSES_MAX = 5  # leaving rules out may orphan others (a transfer rule of a dropped group)


@dataclass(frozen=True, slots=True)
class LoadedFeed:
    """A feed that loaded, what was left out of it, and what was ignored."""

    feed: FareFeed
    skipped: list[FeedProblem]  # rules left out under --skip-unusable-rules, and why
    notices: list[FeedProblem]  # columns the GTFS reference does not define: ignored


def _blank_rows(text: str, rows: set[int]) -> str:
    """`text` with the records numbered `rows` (header = 1) emptied, the numbering kept."""
    records = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for number, record in enumerate(records, start=1):
        writer.writerow([] if number in rows else record)
    return out.getvalue()


def parse_feed_report(
    files: Mapping[str, str],
    *,
    feed_version: str = "",
    skip_unusable_rules: bool = False,
    route_stops: Mapping[str, frozenset[str]] | None = None,
) -> LoadedFeed:
    """Build a FareFeed from file texts; raise FeedInvalid listing every problem.

    With `skip_unusable_rules`, a feed whose only problems are rules onecard cannot use (they
    name what the feed never defines, or need an alighting onecard never sees) loads without
    those rows, and `skipped` names each with its reason."""
    skipped: list[FeedProblem] = []
    current = dict(files)
    if route_stops is None and all(name in files for name in ("trips.txt", "stop_times.txt")):
        route_stops = feed_places.route_stops(
            csv.DictReader(io.StringIO(files["trips.txt"].lstrip("\ufeff"))),
            csv.DictReader(io.StringIO(files["stop_times.txt"].lstrip("\ufeff"))),
        )
    for _ in range(SKIP_PASSES_MAX):
        reader = FeedReader(current)
        feed = _build(reader, feed_version, route_stops)
        if not reader.problems and feed is not None:
            return LoadedFeed(feed, skipped, reader.notices)
        if not skip_unusable_rules or any(not p.unusable for p in reader.problems):
            raise FeedInvalid(reader.problems)
        drop: dict[str, set[int]] = {}
        for problem in reader.problems:
            drop.setdefault(problem.file, set()).add(problem.row)
        for name, rows in drop.items():
            current[name] = _blank_rows(current[name], rows)
        skipped.extend(reader.problems)
    raise FeedInvalid(reader.problems)


def parse_feed(
    files: Mapping[str, str], *, feed_version: str = "", skip_unusable_rules: bool = False
) -> FareFeed:
    """Build a FareFeed from file texts (name -> content); raise FeedInvalid listing every problem."""
    return parse_feed_report(
        files, feed_version=feed_version, skip_unusable_rules=skip_unusable_rules
    ).feed


def read_feed(feed_dir: Path | str, *, skip_unusable_rules: bool = False) -> LoadedFeed:
    """Read and validate the feed in `feed_dir` (a directory or a .zip)."""
    files = read_feed_files(Path(feed_dir))
    served = read_route_stops(Path(feed_dir))
    text = "".join(files[name] for name in sorted(files))
    if served is not None:  # which stops a line serves sets its maximum fare
        text += "".join(f"{r}:{','.join(sorted(served[r]))};" for r in sorted(served))
    version = format(zlib.crc32(text.encode()), "08x")
    if skip_unusable_rules:
        version += "s"  # the same published feed, priced without some of its rules
    return parse_feed_report(
        files,
        feed_version=version,
        skip_unusable_rules=skip_unusable_rules,
        route_stops=served,
    )


def load_feed(feed_dir: Path | str, *, skip_unusable_rules: bool = False) -> FareFeed:
    """Read and validate the feed in `feed_dir`; raise FeedInvalid naming every problem."""
    return read_feed(feed_dir, skip_unusable_rules=skip_unusable_rules).feed


def validate_feed(feed_dir: Path | str) -> list[FeedProblem]:
    """Every problem of the feed in `feed_dir` (empty list: the feed is valid)."""
    return check_feed(feed_dir).problems


@dataclass(frozen=True, slots=True)
class FeedReport:
    """What `onecard fares validate` says: problems refuse the feed, warnings do not."""

    problems: list[FeedProblem]
    warnings: list[FeedProblem]
    notices: list[FeedProblem] = field(default_factory=list)
    skipped: list[FeedProblem] = field(default_factory=list)


def feed_warnings(feed: FareFeed) -> list[FeedProblem]:
    """What a valid feed prices in a way its author may not mean (one warning per card type)."""
    default = feed.default_rider_category
    return [
        FeedProblem(
            "x_concessions.txt",
            0,
            "card_type",
            f"card type {card_type!r} has no row here and no rider category of that id: "
            f"its cards are priced as the default category {default!r} (no concession, "
            "no subsidy claimed)",
        )
        for card_type in feed.card_types_at_default()
    ]


def check_feed(feed_dir: Path | str, *, skip_unusable_rules: bool = False) -> FeedReport:
    """The problems of the feed in `feed_dir`, and its warnings once it has none."""
    try:
        loaded = read_feed(feed_dir, skip_unusable_rules=skip_unusable_rules)
    except FeedInvalid as refused:
        return FeedReport(list(refused.problems), [])
    return FeedReport([], feed_warnings(loaded.feed), loaded.notices, loaded.skipped)


def sample_feed_dir() -> Path:
    """The sample feed shipped in the package data (a small high-plateau city)."""
    return Path(str(resources.files("terminals.fares") / "sample_feed"))


def load_sample_feed() -> FareFeed:
    return load_feed(sample_feed_dir())


def _note_route_stops(
    reader: FeedReader,
    route_stops: Mapping[str, frozenset[str]] | None,
    route_network: Mapping[str, str],
    tap_off: frozenset[str],
) -> None:
    """A notice when a two-tap line's maximum fare cannot be taken over the stops it serves."""
    two_tap = sorted(r for r, n in route_network.items() if n in tap_off)
    if not two_tap:
        return
    if route_stops is None:
        reader.notices.append(
            FeedProblem(
                "stop_times.txt",
                0,
                "",
                "no trips.txt and stop_times.txt: the maximum fare of a two-tap line is taken "
                "over every stop of the feed, not the stops the line serves",
            )
        )
        return
    missing = [r for r in two_tap if not route_stops.get(r)]
    if missing:
        shown = ", ".join(repr(r) for r in missing[:5]) + (" ..." if len(missing) > 5 else "")
        reader.notices.append(
            FeedProblem(
                "stop_times.txt",
                0,
                "",
                f"{len(missing)} two-tap route(s) without trips ({shown}): their maximum fare "
                "is taken over every stop of the feed",
            )
        )


def _build(
    reader: FeedReader,
    feed_version: str,
    route_stops: Mapping[str, frozenset[str]] | None = None,
) -> FareFeed | None:
    """Read every table in the order its references need, then check across tables; the order
    of the calls is the order of the problems a user reads."""
    timezone = feed_tables.read_agency(reader)
    media = feed_tables.read_fare_media(reader)
    categories = feed_tables.read_rider_categories(reader)
    products = feed_tables.read_fare_products(reader, categories, media)
    listed_networks = feed_places.read_networks(reader)
    routes = feed_places.read_routes(reader)
    route_network, networks = feed_places.read_route_networks(reader, listed_networks, routes)
    areas = feed_places.read_areas(reader)
    stops = feed_places.read_stops(reader)
    stop_areas = feed_places.read_stop_areas(reader, areas, stops)
    stop_areas = feed_places.inherit_station_areas(reader, stops, stop_areas)
    services = feed_places.read_calendar_dates(reader, feed_places.read_calendar(reader))
    timeframes, timeframe_groups = feed_places.read_timeframes(reader, services)
    route_type = routes.route_type
    tap_off, open_leg_seconds = feed_legs.read_tap_modes(reader, networks)
    join_rules = feed_legs.read_join_rules(reader, networks, stops.ids)
    refs = feed_tables.LegRuleRefs(
        products.product_ids, networks, areas, timeframe_groups, route_network, route_type, tap_off
    )
    leg_rules, has_priority = feed_tables.read_fare_leg_rules(reader, refs)
    feed_checks.check_buses_priced_at_tap_on(
        reader, leg_rules, has_priority, route_type, route_network, tap_off
    )
    feed_checks.check_files_the_rules_need(reader, leg_rules)
    leg_groups = {rule.leg_group_id for rule in leg_rules} - {""}
    transfer_rules = feed_tables.read_fare_transfer_rules(reader, leg_groups, products.product_ids)
    currency = next(iter(products.currencies), "CNY")
    caps = feed_tables.read_fare_caps(reader, categories, networks, currency)
    feed_checks.check_cap_slots(reader, caps, categories)
    concessions = feed_tables.read_concessions(reader, categories)
    feed_checks.check_default_category(reader, categories, concessions)
    feed_checks.check_card_tags(reader, leg_groups, caps, transfer_rules)
    _note_route_stops(reader, route_stops, route_network, tap_off)
    if reader.problems:
        return None
    return FareFeed(
        feed_version=feed_version,
        timezone=timezone,
        currency=currency,
        media=media,
        products=products.prices,
        rider_categories=categories,
        leg_rules=tuple(leg_rules),
        has_rule_priority=has_priority,
        transfer_rules=transfer_rules,
        timeframes=tuple(timeframes),
        services=services,
        networks=frozenset(networks),
        route_network=route_network,
        route_type=route_type,
        stop_areas={stop: frozenset(ids) for stop, ids in stop_areas.items()},
        areas=frozenset(areas),
        caps=tuple(caps),
        concessions=concessions,
        card_media_id=feed_tables.card_media_id(media),
        leg_groups=frozenset(leg_groups),
        tap_off_networks=tap_off,
        join_rules=join_rules,
        stops=stops.ids,
        stop_parent={
            row["stop_id"]: row["parent_station"]
            for _, row in stops.rows
            if row.get("stop_id") and row.get("parent_station")
        },
        routes=routes.ids | frozenset(route_network),
        open_leg_seconds=open_leg_seconds,
        route_stops=dict(route_stops or {}),
    )


def service_day_seconds(moment_local_time: time) -> int:
    return moment_local_time.hour * 3600 + moment_local_time.minute * 60 + moment_local_time.second
