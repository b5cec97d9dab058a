"""The values of a fare feed: the enums, the frozen rows of each GTFS-Fares table, FareFeed.

Plain data and the few pure functions over it (currency decimals, card id tags); nothing here
reads a file or reports a problem.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import IntEnum, StrEnum

TIMEZONE_DEFAULT = "Asia/Shanghai"
# ISO 4217 minor units: every currency code is accepted (GTFS "Currency code"); most have 2
# decimals, these have another number.
CURRENCY_DECIMALS_NOT_2 = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}


def currency_decimals(currency: str) -> int | None:
    """Decimals of an ISO 4217 code (three capital letters), None if it is not one."""
    if len(currency) != 3 or not currency.isascii() or not currency.isupper():
        return None
    return CURRENCY_DECIMALS_NOT_2.get(currency, 2)


FEED_FILE_BYTES_MAX = 8 * 1024 * 1024  # a fare feed is small; refuse anything absurd
FEED_ROWS_MAX = 100_000
CAPS_PER_CARD_MAX = 4  # cap progress slots in the CAPP record (terminals.capp)
OPEN_LEG_SECONDS_DEFAULT = 4 * 3600  # a boarded leg not tapped off within 4 h never was


class CardType(StrEnum):
    """Card types the issuer personalises (0016 card type flag)."""

    ADULT = "adult"
    STUDENT = "student"
    SENIOR = "senior"
    DISABLED = "disabled"


class FareTransferType(IntEnum):
    """GTFS fare_transfer_rules.fare_transfer_type."""

    FROM_PLUS_TRANSFER = 0  # A + AB
    FROM_PLUS_TRANSFER_PLUS_TO = 1  # A + AB + B
    TRANSFER_ONLY = 2  # AB


class DurationLimitType(IntEnum):
    """GTFS fare_transfer_rules.duration_limit_type: which validations bound the window."""

    DEPARTURE_TO_ARRIVAL = 0
    DEPARTURE_TO_DEPARTURE = 1
    ARRIVAL_TO_DEPARTURE = 2
    ARRIVAL_TO_ARRIVAL = 3


class TapMode(StrEnum):
    """onecard_networks.txt tap_mode: how riders of a network validate."""

    TAP_ON = "tap_on"  # once, at boarding
    TAP_ON_OFF = "tap_on_off"  # at boarding and at alighting (sectional fares)


class CapPeriod(StrEnum):
    """x_fare_caps.txt period: a local service day, or an ISO week starting on Monday."""

    DAY = "day"
    WEEK = "week"


@dataclass(frozen=True, slots=True)
class FeedProblem:
    """One problem of a feed: file, 1-based row (the header is row 1; 0 = whole file), field."""

    file: str
    row: int
    field: str
    message: str
    unusable: str = ""  # why onecard cannot use this rule ("" = a problem of the feed itself)

    def __str__(self) -> str:
        where = f"{self.file}" + (f", row {self.row}" if self.row else "")
        where += f", field {self.field}" if self.field else ""
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class FareMedia:
    fare_media_id: str
    name: str
    media_type: int


@dataclass(frozen=True, slots=True)
class FareProductPrice:
    """One row of fare_products.txt: the price of a product for a rider category and medium."""

    fare_product_id: str
    rider_category_id: str  # "" = any rider
    fare_media_id: str  # "" = any medium
    amount_fen: int
    currency: str


@dataclass(frozen=True, slots=True)
class RiderCategory:
    rider_category_id: str
    name: str
    is_default: bool


@dataclass(frozen=True, slots=True)
class FareLegRule:
    """One row of fare_leg_rules.txt; "" in a field means empty in the feed."""

    row: int
    leg_group_id: str
    network_id: str
    from_area_id: str
    to_area_id: str
    from_timeframe_group_id: str
    to_timeframe_group_id: str
    fare_product_id: str
    rule_priority: int


@dataclass(frozen=True, slots=True)
class FareTransferRule:
    """One row of fare_transfer_rules.txt."""

    row: int
    from_leg_group_id: str
    to_leg_group_id: str
    transfer_count: int | None  # -1 = unlimited; None = not set (different leg groups)
    duration_limit_s: int | None
    duration_limit_type: DurationLimitType | None
    fare_transfer_type: FareTransferType
    fare_product_id: str  # "" = the transfer itself costs nothing


@dataclass(frozen=True, slots=True)
class FareLegJoinRule:
    """One row of fare_leg_join_rules.txt: legs of these networks (at these stops) are joined."""

    row: int
    from_network_id: str
    to_network_id: str
    from_stop_id: str  # "" = any stop (then to_stop_id is "" too)
    to_stop_id: str


@dataclass(frozen=True, slots=True)
class Timeframe:
    timeframe_group_id: str
    start_s: int  # seconds after local midnight, inclusive
    end_s: int  # exclusive; 86400 = 24:00:00
    service_id: str


@dataclass(frozen=True, slots=True)
class Service:
    """calendar.txt plus calendar_dates.txt exceptions for one service_id."""

    service_id: str
    weekdays: tuple[bool, bool, bool, bool, bool, bool, bool]  # Monday first
    start_date: date
    end_date: date
    added: frozenset[date] = frozenset()
    removed: frozenset[date] = frozenset()

    def runs_on(self, day: date) -> bool:
        if day in self.removed:
            return False
        if day in self.added:
            return True
        return self.start_date <= day <= self.end_date and self.weekdays[day.weekday()]


@dataclass(frozen=True, slots=True)
class FareCap:
    """x_fare_caps.txt: the most a rider category pays per period (on one network, or all)."""

    cap_id: str
    rider_category_id: str
    network_id: str  # "" = every network
    period: CapPeriod
    amount_fen: int


@dataclass(frozen=True, slots=True)
class FareFeed:
    """A validated fare feed: everything the pure fare engine needs, nothing else."""

    feed_version: str
    timezone: str
    currency: str
    media: Mapping[str, FareMedia]
    products: tuple[FareProductPrice, ...]
    rider_categories: Mapping[str, RiderCategory]
    leg_rules: tuple[FareLegRule, ...]
    has_rule_priority: bool
    transfer_rules: tuple[FareTransferRule, ...]
    timeframes: tuple[Timeframe, ...]
    services: Mapping[str, Service]
    networks: frozenset[str]
    route_network: Mapping[str, str]  # route_id -> network_id
    route_type: Mapping[str, int]  # route_id -> GTFS route_type, when routes.txt is present
    stop_areas: Mapping[str, frozenset[str]]  # stop_id -> area ids
    areas: frozenset[str]
    caps: tuple[FareCap, ...]
    concessions: Mapping[str, str]  # card type value -> rider_category_id
    card_media_id: str  # the medium of a transit card (fare_media_type 2), "" if none
    leg_groups: frozenset[str] = field(default_factory=frozenset)
    tap_off_networks: frozenset[str] = field(default_factory=frozenset)  # onecard_networks.txt
    join_rules: tuple[FareLegJoinRule, ...] = ()
    stops: frozenset[str] = field(default_factory=frozenset)
    stop_parent: Mapping[str, str] = field(default_factory=dict)  # stop_id -> parent_station
    routes: frozenset[str] = field(default_factory=frozenset)
    # network -> seconds a boarded leg stays open (onecard_networks.txt open_leg_minutes)
    open_leg_seconds: Mapping[str, int] = field(default_factory=dict)
    # route -> the stops its trips serve (trips.txt + stop_times.txt); empty: not in the feed
    route_stops: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def open_leg_window_s(self, route_id: str) -> int:
        """How long after boarding a tap on `route_id` is still the leg's tap-off (seconds)."""
        network = self.route_network.get(route_id, "")
        return self.open_leg_seconds.get(network, OPEN_LEG_SECONDS_DEFAULT)

    def stops_served(self, route_id: str) -> frozenset[str]:
        """The stops a rider of `route_id` may alight at: those its trips serve, or every stop of
        the feed when the feed has no stop_times.txt for it (the loader says so)."""
        served = self.route_stops.get(route_id)
        if served:
            return served
        return self.stops | frozenset(self.stop_areas)

    def taps_off(self, route_id: str) -> bool:
        """Whether riders of `route_id` tap on and off (its network is tap_on_off)."""
        return self.route_network.get(route_id, "") in self.tap_off_networks

    @property
    def default_rider_category(self) -> str:
        for category in self.rider_categories.values():
            if category.is_default:
                return category.rider_category_id
        return ""

    def rider_category_for(self, card_type: str) -> str:
        """The rider category a card type rides under: its x_concessions.txt row, else the
        rider category of the same id (`senior` rides as `senior`), else the default."""
        if card_type in self.concessions:
            return self.concessions[card_type]
        if card_type in self.rider_categories:
            return card_type
        return self.default_rider_category

    def card_types_at_default(self) -> tuple[str, ...]:
        """Concession card types that fall back to the default category: no x_concessions.txt
        row and no rider category of their own id (the adult card rides at the default anyway)."""
        return tuple(
            t.value
            for t in CardType
            if t is not CardType.ADULT
            and t.value not in self.concessions
            and t.value not in self.rider_categories
        )


def id_tag(value: str) -> int:
    """A 2-byte tag naming a feed id on the card (0 is reserved for "none")."""
    if not value:
        return 0
    return (zlib.crc32(value.encode("utf-8")) % 0xFFFF) + 1
