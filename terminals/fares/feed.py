"""Load and validate a GTFS-Fares v2 feed (plus the onecard extension files) into frozen values.

A broken feed is refused as a whole, with every problem named by file, row and field; this
module never prices anything and never does I/O beyond reading the feed directory. The values
live in feed_model, the per-table readers in feed_tables, the cross-table checks in feed_checks.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from importlib import resources
from pathlib import Path

from terminals.errors import FeedInvalid
from terminals.fares import feed_checks, feed_places, feed_tables
from terminals.fares.feed_csv import AMOUNT_MINOR_MAX, WIRE_ID_MAX, FeedReader
from terminals.fares.feed_files import FEED_FILES, read_feed_files
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
    "FareLegRule",
    "FareMedia",
    "FareProductPrice",
    "FareTransferRule",
    "FareTransferType",
    "FeedProblem",
    "FeedReport",
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
    "sample_feed_dir",
    "service_day_seconds",
    "validate_feed",
]


def parse_feed(files: Mapping[str, str], *, feed_version: str = "") -> FareFeed:
    """Build a FareFeed from file texts (name -> content); raise FeedInvalid listing every problem."""
    reader = FeedReader(files)
    feed = _build(reader, feed_version)
    if reader.problems or feed is None:
        raise FeedInvalid(reader.problems)
    return feed


def load_feed(feed_dir: Path | str) -> FareFeed:
    """Read and validate the feed in `feed_dir`; raise FeedInvalid naming every problem."""
    path = Path(feed_dir)
    files = read_feed_files(path)
    version = format(zlib.crc32("".join(files[name] for name in sorted(files)).encode()), "08x")
    return parse_feed(files, feed_version=version)


def validate_feed(feed_dir: Path | str) -> list[FeedProblem]:
    """Every problem of the feed in `feed_dir` (empty list: the feed is valid)."""
    return check_feed(feed_dir).problems


@dataclass(frozen=True, slots=True)
class FeedReport:
    """What `onecard fares validate` says: problems refuse the feed, warnings do not."""

    problems: list[FeedProblem]
    warnings: list[FeedProblem]


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


def check_feed(feed_dir: Path | str) -> FeedReport:
    """The problems of the feed in `feed_dir`, and its warnings once it has none."""
    try:
        feed = load_feed(feed_dir)
    except FeedInvalid as refused:
        return FeedReport(list(refused.problems), [])
    return FeedReport([], feed_warnings(feed))


def sample_feed_dir() -> Path:
    """The sample feed shipped in the package data (a small high-plateau city)."""
    return Path(str(resources.files("terminals.fares") / "sample_feed"))


def load_sample_feed() -> FareFeed:
    return load_feed(sample_feed_dir())


def _build(reader: FeedReader, feed_version: str) -> FareFeed | None:
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
    refs = feed_tables.LegRuleRefs(
        products.product_ids, networks, areas, timeframe_groups, route_network, route_type
    )
    leg_rules, has_priority = feed_tables.read_fare_leg_rules(reader, refs)
    feed_checks.check_buses_priced_at_tap_on(
        reader, leg_rules, has_priority, route_type, route_network
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
    )


def service_day_seconds(moment_local_time: time) -> int:
    return moment_local_time.hour * 3600 + moment_local_time.minute * 60 + moment_local_time.second
