"""Load and validate a GTFS-Fares v2 feed (plus the onecard extension files) into frozen values.

A broken feed is refused as a whole, with every problem named by file, row and field; this
module never prices anything and never does I/O beyond reading the feed directory.
"""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, time
from decimal import Decimal, InvalidOperation
from enum import IntEnum, StrEnum
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from terminals.errors import FeedInvalid, invariant

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


# --------------------------------------------------------------------------- reading files


@dataclass(slots=True)
class _Table:
    name: str
    columns: tuple[str, ...]
    rows: list[tuple[int, dict[str, str]]]  # (row number, values)


class _Reader:
    """Collects the problems of one feed while reading it."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = files
        self.problems: list[FeedProblem] = []

    def problem(self, file: str, row: int, field_name: str, message: str) -> None:
        self.problems.append(FeedProblem(file, row, field_name, message))

    def table(self, name: str, required: Iterable[str], *, must_exist: bool = False) -> _Table:
        text = self.files.get(name)
        if text is None:
            if must_exist:
                self.problem(name, 0, "", "required file is missing")
            return _Table(name, (), [])
        reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
        try:
            header = [column.strip() for column in next(reader)]
        except StopIteration:
            self.problem(name, 0, "", "file is empty (no header row)")
            return _Table(name, (), [])
        for column in required:
            if column not in header:
                self.problem(name, 1, column, "required column is missing")
        rows: list[tuple[int, dict[str, str]]] = []
        for number, values in enumerate(reader, start=2):
            if not values or all(not value.strip() for value in values):
                continue
            if len(rows) >= FEED_ROWS_MAX:
                self.problem(name, number, "", f"more than {FEED_ROWS_MAX} rows")
                break
            if len(values) != len(header):
                self.problem(
                    name, number, "", f"has {len(values)} values but the header has {len(header)}"
                )
            row = {
                column: (values[i].strip() if i < len(values) else "")
                for i, column in enumerate(header)
            }
            rows.append((number, row))
        return _Table(name, tuple(header), rows)

    def required(self, table: _Table, number: int, row: dict[str, str], column: str) -> str:
        value = row.get(column, "")
        if not value and column in table.columns:
            self.problem(table.name, number, column, "required value is empty")
        return value

    def integer(
        self, table: str, number: int, column: str, value: str, *, low: int, high: int
    ) -> int | None:
        if not value:
            return None
        try:
            parsed = int(value)
        except ValueError:
            self.problem(table, number, column, f"{value!r} is not an integer")
            return None
        if not low <= parsed <= high:
            self.problem(table, number, column, f"{parsed} is outside {low}..{high}")
            return None
        return parsed


# The files fares are read from. A full agency feed also has stop_times.txt, shapes.txt, trips.txt
# (often hundreds of megabytes): they say nothing about fares and are neither read nor bounded.
FEED_FILES = frozenset(
    {
        "agency.txt",
        "areas.txt",
        "calendar.txt",
        "calendar_dates.txt",
        "fare_leg_rules.txt",
        "fare_media.txt",
        "fare_products.txt",
        "fare_transfer_rules.txt",
        "networks.txt",
        "rider_categories.txt",
        "route_networks.txt",
        "routes.txt",
        "stop_areas.txt",
        "stops.txt",
        "timeframes.txt",
        "x_concessions.txt",
        "x_fare_caps.txt",
    }
)


def _decode(name: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FeedInvalid([FeedProblem(name, 0, "", f"not UTF-8: {error}")]) from error


def _read_zip(feed_zip: Path) -> dict[str, str]:
    """The fare files of a zipped feed (as agencies publish them): at the top of the archive, or
    in its one folder. Sizes are checked from the directory before anything is inflated."""
    try:
        archive = zipfile.ZipFile(feed_zip)
    except (zipfile.BadZipFile, OSError) as error:
        raise FeedInvalid(
            [FeedProblem(feed_zip.name, 0, "", f"not a zip archive: {error}")]
        ) from None
    files: dict[str, str] = {}
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        folders = {m.filename.rsplit("/", 1)[0] for m in members if "/" in m.filename}
        prefix = ""
        if not any("/" not in m.filename and m.filename in FEED_FILES for m in members):
            prefix = f"{folders.pop()}/" if len(folders) == 1 else ""
        for member in members:
            name = member.filename.removeprefix(prefix)
            if name not in FEED_FILES:
                continue
            if member.file_size > FEED_FILE_BYTES_MAX:
                raise FeedInvalid(
                    [
                        FeedProblem(
                            name,
                            0,
                            "",
                            f"{member.file_size} bytes, more than {FEED_FILE_BYTES_MAX}",
                        )
                    ]
                )
            try:
                with archive.open(member) as handle:
                    raw = handle.read(FEED_FILE_BYTES_MAX + 1)
            except (zipfile.BadZipFile, OSError, NotImplementedError) as error:
                raise FeedInvalid([FeedProblem(name, 0, "", f"cannot be read: {error}")]) from None
            if len(raw) > FEED_FILE_BYTES_MAX:
                raise FeedInvalid(
                    [FeedProblem(name, 0, "", f"more than {FEED_FILE_BYTES_MAX} bytes")]
                )
            files[name] = _decode(name, raw)
    return files


def _read_directory(feed_dir: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    if feed_dir.is_file() and feed_dir.suffix.lower() == ".zip":
        return _read_zip(feed_dir)
    if not feed_dir.is_dir():
        raise FeedInvalid(
            [FeedProblem(str(feed_dir), 0, "", "is not a directory (or a .zip of a feed)")]
        )
    for path in sorted(p for p in feed_dir.glob("*.txt") if p.name in FEED_FILES):
        size = path.stat().st_size
        if size > FEED_FILE_BYTES_MAX:
            raise FeedInvalid(
                [FeedProblem(path.name, 0, "", f"{size} bytes, more than {FEED_FILE_BYTES_MAX}")]
            )
        with path.open("rb") as handle:  # bounded: a device or a growing file has no size
            raw = handle.read(FEED_FILE_BYTES_MAX + 1)
        if len(raw) > FEED_FILE_BYTES_MAX:
            raise FeedInvalid(
                [FeedProblem(path.name, 0, "", f"more than {FEED_FILE_BYTES_MAX} bytes")]
            )
        files[path.name] = _decode(path.name, raw)
    return files


AMOUNT_MINOR_MAX = 0xFFFFFFFF  # what a card's 4-byte amount field can carry


def _minor_units(text: str, decimals: int, currency: str) -> int | str:
    """`text` in minor units (fen), or the problem with it."""
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return f"{text!r} is not a number"
    if not amount.is_finite():
        return f"{text!r} is not a finite amount"
    scaled = amount.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        return f"{text} has more than {decimals} decimals for {currency}"
    if abs(scaled) > AMOUNT_MINOR_MAX:
        return f"{text} is beyond what a card amount holds ({AMOUNT_MINOR_MAX} minor units)"
    return int(scaled)


def _parse_time(value: str) -> int | None:
    parts = value.split(":")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        return None
    hours, minutes, seconds = (int(part) for part in parts)
    if minutes > 59 or seconds > 59:
        return None
    return hours * 3600 + minutes * 60 + seconds


def _parse_date(value: str) -> date | None:
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


WIRE_ID_MAX = 64  # ids that travel in tap records (rider category, route, stop) fit the protocol
_WIRE_ID_COLUMNS = {
    ("rider_categories.txt", "rider_category_id"),
    ("routes.txt", "route_id"),
    ("stops.txt", "stop_id"),
}


def _unique(reader: _Reader, table: _Table, column: str) -> dict[str, tuple[int, dict[str, str]]]:
    seen: dict[str, tuple[int, dict[str, str]]] = {}
    for number, row in table.rows:
        key = reader.required(table, number, row, column)
        if not key:
            continue
        if (table.name, column) in _WIRE_ID_COLUMNS and len(key) > WIRE_ID_MAX:
            reader.problem(table.name, number, column, f"longer than {WIRE_ID_MAX} characters")
            continue
        if key in seen:
            reader.problem(table.name, number, column, f"{key!r} repeats row {seen[key][0]}")
            continue
        seen[key] = (number, row)
    return seen


# --------------------------------------------------------------------------- validation


def parse_feed(files: Mapping[str, str], *, feed_version: str = "") -> FareFeed:
    """Build a FareFeed from file texts (name -> content); raise FeedInvalid listing every problem."""
    reader = _Reader(files)
    feed = _build(reader, feed_version)
    if reader.problems or feed is None:
        raise FeedInvalid(reader.problems)
    return feed


def load_feed(feed_dir: Path | str) -> FareFeed:
    """Read and validate the feed in `feed_dir`; raise FeedInvalid naming every problem."""
    path = Path(feed_dir)
    files = _read_directory(path)
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


def _build(reader: _Reader, feed_version: str) -> FareFeed | None:
    # agency.txt: only the time zone matters to fares (service day of a tap).
    timezone = TIMEZONE_DEFAULT
    agency = reader.table("agency.txt", ("agency_timezone",))
    zones = {row.get("agency_timezone", "") for _, row in agency.rows} - {""}
    if len(zones) > 1:
        reader.problem("agency.txt", 0, "agency_timezone", f"several time zones {sorted(zones)}")
    elif zones:
        timezone = zones.pop()
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            reader.problem("agency.txt", 2, "agency_timezone", f"unknown time zone {timezone!r}")
            timezone = TIMEZONE_DEFAULT

    # fare_media.txt
    media_table = reader.table("fare_media.txt", ("fare_media_id", "fare_media_type"))
    media: dict[str, FareMedia] = {}
    for key, (number, row) in _unique(reader, media_table, "fare_media_id").items():
        kind = reader.integer(
            "fare_media.txt",
            number,
            "fare_media_type",
            row.get("fare_media_type", ""),
            low=0,
            high=4,
        )
        if kind is None:
            if not row.get("fare_media_type"):
                reader.problem(
                    "fare_media.txt", number, "fare_media_type", "required value is empty"
                )
            continue
        media[key] = FareMedia(key, row.get("fare_media_name", ""), kind)
    card_media = sorted(m.fare_media_id for m in media.values() if m.media_type == 2)
    card_media_id = card_media[0] if card_media else ""

    # rider_categories.txt
    categories_table = reader.table(
        "rider_categories.txt", ("rider_category_id", "rider_category_name")
    )
    categories: dict[str, RiderCategory] = {}
    for key, (number, row) in _unique(reader, categories_table, "rider_category_id").items():
        flag = row.get("is_default_fare_category", "")
        if flag not in ("", "0", "1"):
            reader.problem(
                "rider_categories.txt",
                number,
                "is_default_fare_category",
                f"{flag!r} is not 0 or 1",
            )
        name = reader.required(categories_table, number, row, "rider_category_name")
        categories[key] = RiderCategory(key, name, flag == "1")
    defaults = [c for c in categories.values() if c.is_default]
    if len(defaults) > 1:
        reader.problem(
            "rider_categories.txt",
            0,
            "is_default_fare_category",
            f"more than one default category: {sorted(c.rider_category_id for c in defaults)}",
        )

    # fare_products.txt
    products_table = reader.table(
        "fare_products.txt", ("fare_product_id", "amount", "currency"), must_exist=True
    )
    products: list[FareProductPrice] = []
    product_keys: dict[tuple[str, str, str], int] = {}
    currencies: set[str] = set()
    for number, row in products_table.rows:
        product_id = reader.required(products_table, number, row, "fare_product_id")
        category = row.get("rider_category_id", "")
        medium = row.get("fare_media_id", "")
        currency = reader.required(products_table, number, row, "currency")
        amount_text = reader.required(products_table, number, row, "amount")
        if category and category not in categories:
            reader.problem(
                "fare_products.txt",
                number,
                "rider_category_id",
                f"unknown rider category {category!r}",
            )
        if medium and medium not in media:
            reader.problem(
                "fare_products.txt", number, "fare_media_id", f"unknown fare medium {medium!r}"
            )
        decimals = currency_decimals(currency)
        if currency and decimals is None:
            reader.problem(
                "fare_products.txt",
                number,
                "currency",
                f"{currency!r} is not an ISO 4217 currency code",
            )
            continue
        if not (product_id and currency and amount_text):
            continue
        invariant(decimals is not None, "currency checked above")
        minor = _minor_units(amount_text, decimals or 0, currency)
        if isinstance(minor, str):
            reader.problem("fare_products.txt", number, "amount", minor)
            continue
        product_key = (product_id, category, medium)
        if product_key in product_keys:
            reader.problem(
                "fare_products.txt",
                number,
                "fare_product_id",
                f"{product_id!r} for rider category {category!r} and medium {medium!r} "
                f"repeats row {product_keys[product_key]}",
            )
            continue
        product_keys[product_key] = number
        currencies.add(currency)
        products.append(FareProductPrice(product_id, category, medium, minor, currency))
    if len(currencies) > 1:
        reader.problem("fare_products.txt", 0, "currency", f"mixed currencies {sorted(currencies)}")
    # Every product named in the file exists, even if one of its rows is broken (that row has
    # its own problem; naming the product unknown elsewhere would only mislead).
    product_ids = {row.get("fare_product_id", "") for _, row in products_table.rows} - {""}

    # networks.txt, routes.txt, route_networks.txt
    networks_table = reader.table("networks.txt", ("network_id",))
    networks = set(_unique(reader, networks_table, "network_id"))
    routes_table = reader.table("routes.txt", ("route_id", "route_type"))
    routes = _unique(reader, routes_table, "route_id")
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
            networks.add(row["network_id"])
    route_networks_table = reader.table("route_networks.txt", ("network_id", "route_id"))
    if route_networks_table.rows and route_network:
        reader.problem(
            "route_networks.txt", 0, "", "routes.txt already has network_id; use one or the other"
        )
    for number, row in route_networks_table.rows:
        network_id = reader.required(route_networks_table, number, row, "network_id")
        route_id = reader.required(route_networks_table, number, row, "route_id")
        if network_id and networks_table.rows and network_id not in networks:
            reader.problem(
                "route_networks.txt", number, "network_id", f"unknown network {network_id!r}"
            )
        if route_id and routes and route_id not in routes:
            reader.problem("route_networks.txt", number, "route_id", f"unknown route {route_id!r}")
        if route_id in route_network:
            reader.problem(
                "route_networks.txt", number, "route_id", f"route {route_id!r} is in two networks"
            )
            continue
        if network_id and route_id:
            route_network[route_id] = network_id
            networks.add(network_id)

    # areas.txt, stops.txt, stop_areas.txt
    areas_table = reader.table("areas.txt", ("area_id",))
    areas = set(_unique(reader, areas_table, "area_id"))
    stops_table = reader.table("stops.txt", ("stop_id",))
    stops = set(_unique(reader, stops_table, "stop_id"))
    stop_areas_table = reader.table("stop_areas.txt", ("area_id", "stop_id"))
    stop_areas: dict[str, set[str]] = {}
    for number, row in stop_areas_table.rows:
        area_id = reader.required(stop_areas_table, number, row, "area_id")
        stop_id = reader.required(stop_areas_table, number, row, "stop_id")
        if area_id and area_id not in areas:
            reader.problem("stop_areas.txt", number, "area_id", f"unknown area {area_id!r}")
        if stop_id and stops_table.columns and stop_id not in stops:
            reader.problem("stop_areas.txt", number, "stop_id", f"unknown stop {stop_id!r}")
        if area_id and stop_id:
            stop_areas.setdefault(stop_id, set()).add(area_id)
    # GTFS stop_areas: a station (location_type 1) in an area puts all its platforms
    # (location_type 0 or empty, parent_station = the station) there too, unless a platform
    # is assigned to areas of its own.
    for number, row in stops_table.rows:
        stop_id, parent = row.get("stop_id", ""), row.get("parent_station", "")
        if not (stop_id and parent) or row.get("location_type", "") not in ("", "0"):
            continue
        if parent not in stops:
            reader.problem("stops.txt", number, "parent_station", f"unknown stop {parent!r}")
            continue
        if stop_id not in stop_areas and parent in stop_areas:
            stop_areas[stop_id] = set(stop_areas[parent])

    # calendar.txt, calendar_dates.txt, timeframes.txt
    services = _read_services(reader)
    timeframes_table = reader.table("timeframes.txt", ("timeframe_group_id", "service_id"))
    timeframes: list[Timeframe] = []
    for number, row in timeframes_table.rows:
        group = reader.required(timeframes_table, number, row, "timeframe_group_id")
        service_id = reader.required(timeframes_table, number, row, "service_id")
        start_text, end_text = row.get("start_time", ""), row.get("end_time", "")
        if bool(start_text) != bool(end_text):
            reader.problem(
                "timeframes.txt",
                number,
                "end_time" if start_text else "start_time",
                "start_time and end_time must both be set or both be empty",
            )
            continue
        start_s, end_s = 0, 86400
        if start_text:
            parsed_start, parsed_end = _parse_time(start_text), _parse_time(end_text)
            if parsed_start is None or parsed_start >= 86400:
                reader.problem(
                    "timeframes.txt",
                    number,
                    "start_time",
                    f"{start_text!r} is not HH:MM:SS < 24:00:00",
                )
                continue
            if parsed_end is None or parsed_end > 86400:
                reader.problem(
                    "timeframes.txt",
                    number,
                    "end_time",
                    f"{end_text!r} is not HH:MM:SS <= 24:00:00",
                )
                continue
            if parsed_end <= parsed_start:
                reader.problem(
                    "timeframes.txt", number, "end_time", "end_time is not after start_time"
                )
                continue
            start_s, end_s = parsed_start, parsed_end
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
    timeframe_groups = {t.timeframe_group_id for t in timeframes} | {
        row.get("timeframe_group_id", "") for _, row in timeframes_table.rows
    }

    # fare_leg_rules.txt
    legs_table = reader.table("fare_leg_rules.txt", ("fare_product_id",), must_exist=True)
    has_priority = "rule_priority" in legs_table.columns
    leg_rules: list[FareLegRule] = []
    leg_keys: dict[tuple[str, ...], int] = {}
    for number, row in legs_table.rows:
        product_id = reader.required(legs_table, number, row, "fare_product_id")
        # GTFS primary key: network, from/to area, from/to timeframe and product.
        leg_key = tuple(
            row.get(column, "")
            for column in (
                "network_id",
                "from_area_id",
                "to_area_id",
                "from_timeframe_group_id",
                "to_timeframe_group_id",
                "fare_product_id",
            )
        )
        if leg_key in leg_keys:
            reader.problem(
                "fare_leg_rules.txt",
                number,
                "fare_product_id",
                f"repeats row {leg_keys[leg_key]} (same network, areas, timeframes and product)",
            )
        leg_keys.setdefault(leg_key, number)
        if product_id and product_id not in product_ids:
            reader.problem(
                "fare_leg_rules.txt",
                number,
                "fare_product_id",
                f"unknown fare product {product_id!r}",
            )
        network_id = row.get("network_id", "")
        if network_id and network_id not in networks:
            reader.problem(
                "fare_leg_rules.txt", number, "network_id", f"unknown network {network_id!r}"
            )
        for column in ("from_area_id", "to_area_id"):
            if row.get(column) and row[column] not in areas:
                reader.problem(
                    "fare_leg_rules.txt", number, column, f"unknown area {row[column]!r}"
                )
        for column in ("from_timeframe_group_id", "to_timeframe_group_id"):
            if row.get(column) and row[column] not in timeframe_groups:
                reader.problem(
                    "fare_leg_rules.txt", number, column, f"unknown timeframe group {row[column]!r}"
                )
        priority = reader.integer(
            "fare_leg_rules.txt",
            number,
            "rule_priority",
            row.get("rule_priority", ""),
            low=0,
            high=2**31 - 1,
        )
        if row.get("to_area_id") or row.get("to_timeframe_group_id"):
            bus_routes = [
                r for r, n in route_network.items() if n == network_id and route_type.get(r) == 3
            ]
            # A rule of no network may name an alighting area (metro zones): checked below
            # that buses keep a rule a tap-on alone can match.
            if network_id and bus_routes:
                reader.problem(
                    "fare_leg_rules.txt",
                    number,
                    "to_area_id" if row.get("to_area_id") else "to_timeframe_group_id",
                    "a rule for buses must not depend on the alighting stop or time "
                    "(buses see only tap-on)",
                )
        leg_rules.append(
            FareLegRule(
                number,
                row.get("leg_group_id", ""),
                network_id,
                row.get("from_area_id", ""),
                row.get("to_area_id", ""),
                row.get("from_timeframe_group_id", ""),
                row.get("to_timeframe_group_id", ""),
                product_id,
                priority or 0,
            )
        )
    _check_buses_priced_at_tap_on(reader, leg_rules, has_priority, route_type, route_network)
    _check_files_the_rules_need(reader, leg_rules)
    leg_groups = {rule.leg_group_id for rule in leg_rules} - {""}

    transfer_rules = _read_transfer_rules(reader, leg_groups, product_ids)

    # x_fare_caps.txt (onecard extension: GTFS has no capping)
    caps_table = reader.table(
        "x_fare_caps.txt", ("cap_id", "rider_category_id", "period", "amount", "currency")
    )
    caps: list[FareCap] = []
    currency = next(iter(currencies), "CNY")
    for cap_id, (number, row) in _unique(reader, caps_table, "cap_id").items():
        category = reader.required(caps_table, number, row, "rider_category_id")
        if category and category not in categories:
            reader.problem(
                "x_fare_caps.txt",
                number,
                "rider_category_id",
                f"unknown rider category {category!r}",
            )
        network_id = row.get("network_id", "")
        if network_id and network_id not in networks:
            reader.problem(
                "x_fare_caps.txt", number, "network_id", f"unknown network {network_id!r}"
            )
        period_text = reader.required(caps_table, number, row, "period")
        try:
            period = CapPeriod(period_text)
        except ValueError:
            if period_text:
                reader.problem(
                    "x_fare_caps.txt", number, "period", f"{period_text!r} is not day or week"
                )
            continue
        cap_currency = reader.required(caps_table, number, row, "currency")
        if cap_currency and cap_currency != currency:
            reader.problem(
                "x_fare_caps.txt",
                number,
                "currency",
                f"{cap_currency!r} differs from the fares' {currency!r}",
            )
            continue
        amount_text = reader.required(caps_table, number, row, "amount")
        cap_decimals = currency_decimals(currency)
        minor = _minor_units(amount_text, 2 if cap_decimals is None else cap_decimals, currency)
        if isinstance(minor, int) and minor < 0:
            minor = f"{amount_text} is negative: a cap is a non-negative amount"
        if isinstance(minor, str):
            reader.problem("x_fare_caps.txt", number, "amount", minor)
            continue
        caps.append(FareCap(cap_id, category, network_id, period, minor))
    _check_cap_slots(reader, caps, categories)

    # x_concessions.txt (onecard extension: card type -> rider category)
    concessions_table = reader.table("x_concessions.txt", ("card_type", "rider_category_id"))
    concessions: dict[str, str] = {}
    for card_type, (number, row) in _unique(reader, concessions_table, "card_type").items():
        if card_type not in {t.value for t in CardType}:
            reader.problem(
                "x_concessions.txt",
                number,
                "card_type",
                f"{card_type!r} is not one of {[t.value for t in CardType]}",
            )
            continue
        category = reader.required(concessions_table, number, row, "rider_category_id")
        if category and category not in categories:
            reader.problem(
                "x_concessions.txt",
                number,
                "rider_category_id",
                f"unknown rider category {category!r}",
            )
            continue
        concessions[card_type] = category
    unmapped = [
        t.value for t in CardType if t.value not in concessions and t.value not in categories
    ]
    if categories and not defaults and unmapped:
        reader.problem(
            "rider_categories.txt",
            0,
            "is_default_fare_category",
            f"no default rider category, and card type(s) {unmapped} have no x_concessions.txt "
            "row and no rider category of their own id",
        )

    # Ids that travel on the card as 2-byte tags must not collide.
    tags: dict[int, str] = {}
    pairs = {f"{r.from_leg_group_id}>{r.to_leg_group_id}" for r in transfer_rules}
    for name in sorted(leg_groups | {c.cap_id for c in caps} | pairs):
        tag = id_tag(name)
        if tag in tags and tags[tag] != name:
            reader.problem(
                "fare_leg_rules.txt",
                0,
                "leg_group_id",
                f"ids {tags[tag]!r} and {name!r} share a card tag; rename one",
            )
        tags[tag] = name

    if reader.problems:
        return None
    return FareFeed(
        feed_version=feed_version,
        timezone=timezone,
        currency=currency,
        media=media,
        products=tuple(products),
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
        card_media_id=card_media_id,
        leg_groups=frozenset(leg_groups),
    )


def _check_cap_slots(
    reader: _Reader, caps: list[FareCap], categories: Mapping[str, RiderCategory]
) -> None:
    """A card holds at most CAPS_PER_CARD_MAX cap slots: a concession card holds its own caps
    and the default category's (its full fares are what that rider would pay, caps included)."""
    count: dict[str, int] = {}
    for cap in caps:
        count[cap.rider_category_id] = count.get(cap.rider_category_id, 0) + 1
    default = next((c.rider_category_id for c in categories.values() if c.is_default), "")
    for category_id in sorted(set(count) | set(categories)):
        slots = count.get(category_id, 0)
        if category_id != default:
            slots += count.get(default, 0)
        if slots > CAPS_PER_CARD_MAX:
            reader.problem(
                "x_fare_caps.txt",
                0,
                "rider_category_id",
                f"a {category_id!r} card needs {slots} cap slots (its own caps and the default "
                f"category's, which price its full fare); a card holds at most "
                f"{CAPS_PER_CARD_MAX}",
            )


def _check_files_the_rules_need(reader: _Reader, leg_rules: list[FareLegRule]) -> None:
    """A rule that names a network or an area needs the file that puts routes in networks or
    stops in areas: without it no leg ever matches the rule, and every tap is refused a fare."""
    needs = (
        ("routes.txt", "network_id", "routes belong to networks through routes.txt"),
        ("stop_areas.txt", "from_area_id", "stops belong to areas through stop_areas.txt"),
        ("stop_areas.txt", "to_area_id", "stops belong to areas through stop_areas.txt"),
    )
    reported = set()
    for file, column, why in needs:
        naming = [rule for rule in leg_rules if getattr(rule, column)]
        if naming and file not in reader.files and file not in reported:
            reported.add(file)
            reader.problem(
                file,
                0,
                "",
                f"required file is missing: fare_leg_rules.txt row {naming[0].row} names "
                f"{column} {getattr(naming[0], column)!r}, and {why}",
            )


def _check_buses_priced_at_tap_on(
    reader: _Reader,
    leg_rules: list[FareLegRule],
    has_priority: bool,
    route_type: Mapping[str, int],
    route_network: Mapping[str, str],
) -> None:
    """Rules of no network that need the alighting stop or time are fine for metro gates, as long
    as every bus route (route_type 3) still matches a rule that needs neither."""
    needs_exit = [
        r for r in leg_rules if not r.network_id and (r.to_area_id or r.to_timeframe_group_id)
    ]
    if not needs_exit:
        return
    tap_on = [r for r in leg_rules if not r.to_area_id and not r.to_timeframe_group_id]
    listed = {r.network_id for r in leg_rules} - {""}
    stranded: dict[str, list[str]] = {}
    for route_id, kind in sorted(route_type.items()):
        if kind != 3:
            continue
        network = route_network.get(route_id, "")
        if has_priority:
            priced = any(r.network_id in ("", network) for r in tap_on)
        else:
            wanted = network if network in listed else ""
            priced = any(r.network_id == wanted for r in tap_on)
        if not priced:
            stranded.setdefault(network, []).append(route_id)
    for network, routes in sorted(stranded.items()):
        reader.problem(
            "fare_leg_rules.txt",
            needs_exit[0].row,
            "to_area_id" if needs_exit[0].to_area_id else "to_timeframe_group_id",
            f"bus routes {routes[:5]} (network {network or '(none)'!r}) match only rules that "
            "need the alighting stop or time; buses see only tap-on: give them a rule without",
        )


def _read_services(reader: _Reader) -> dict[str, Service]:
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    calendar = reader.table("calendar.txt", ("service_id", *days, "start_date", "end_date"))
    services: dict[str, Service] = {}
    for service_id, (number, row) in _unique(reader, calendar, "service_id").items():
        flags = []
        for day in days:
            value = row.get(day, "")
            if value not in ("0", "1"):
                reader.problem("calendar.txt", number, day, f"{value!r} is not 0 or 1")
            flags.append(value == "1")
        start = _parse_date(row.get("start_date", ""))
        end = _parse_date(row.get("end_date", ""))
        if start is None:
            reader.problem("calendar.txt", number, "start_date", "is not a date YYYYMMDD")
        if end is None:
            reader.problem("calendar.txt", number, "end_date", "is not a date YYYYMMDD")
        if start and end:
            if end < start:
                reader.problem("calendar.txt", number, "end_date", "is before start_date")
            services[service_id] = Service(service_id, tuple(flags), start, end)  # type: ignore[arg-type]
    exceptions = reader.table("calendar_dates.txt", ("service_id", "date", "exception_type"))
    added: dict[str, set[date]] = {}
    removed: dict[str, set[date]] = {}
    for number, row in exceptions.rows:
        service_id = reader.required(exceptions, number, row, "service_id")
        exception_day = _parse_date(row.get("date", ""))
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


def _read_transfer_rules(
    reader: _Reader, leg_groups: set[str], product_ids: set[str]
) -> tuple[FareTransferRule, ...]:
    table = reader.table("fare_transfer_rules.txt", ("fare_transfer_type",))
    rules: list[FareTransferRule] = []
    keys: dict[tuple, int] = {}
    name = "fare_transfer_rules.txt"
    for number, row in table.rows:
        from_group = row.get("from_leg_group_id", "")
        to_group = row.get("to_leg_group_id", "")
        for column, value in (("from_leg_group_id", from_group), ("to_leg_group_id", to_group)):
            if value and value not in leg_groups:
                reader.problem(
                    name, number, column, f"unknown leg group {value!r} (not in fare_leg_rules.txt)"
                )
        count_text = row.get("transfer_count", "")
        count = reader.integer(name, number, "transfer_count", count_text, low=-1, high=2**31 - 1)
        if count == 0:
            reader.problem(
                name, number, "transfer_count", "0 is not allowed (-1 = unlimited, or >= 1)"
            )
        same_group = bool(from_group) and from_group == to_group
        if count_text and not same_group:
            reader.problem(
                name,
                number,
                "transfer_count",
                "is forbidden unless from_leg_group_id equals to_leg_group_id",
            )
        if same_group and not count_text:
            reader.problem(
                name,
                number,
                "transfer_count",
                "is required when from_leg_group_id equals to_leg_group_id",
            )
        limit = reader.integer(
            name, number, "duration_limit", row.get("duration_limit", ""), low=1, high=2**31 - 1
        )
        limit_type_text = row.get("duration_limit_type", "")
        limit_type = reader.integer(
            name, number, "duration_limit_type", limit_type_text, low=0, high=3
        )
        if row.get("duration_limit") and not limit_type_text:
            reader.problem(
                name, number, "duration_limit_type", "is required when duration_limit is set"
            )
        if limit_type_text and not row.get("duration_limit"):
            reader.problem(
                name, number, "duration_limit_type", "is forbidden when duration_limit is empty"
            )
        transfer_type_text = reader.required(table, number, row, "fare_transfer_type")
        transfer_type = reader.integer(
            name, number, "fare_transfer_type", transfer_type_text, low=0, high=2
        )
        product_id = row.get("fare_product_id", "")
        if product_id and product_id not in product_ids:
            reader.problem(name, number, "fare_product_id", f"unknown fare product {product_id!r}")
        key = (from_group, to_group, product_id, count_text, row.get("duration_limit", ""))
        if key in keys:
            reader.problem(
                name, number, "", f"repeats row {keys[key]} (same groups, product, count and limit)"
            )
        keys[key] = number
        if transfer_type is None:
            continue
        rules.append(
            FareTransferRule(
                number,
                from_group,
                to_group,
                count,
                limit,
                DurationLimitType(limit_type) if limit_type is not None else None,
                FareTransferType(transfer_type),
                product_id,
            )
        )
    return tuple(rules)


def service_day_seconds(moment_local_time: time) -> int:
    return moment_local_time.hour * 3600 + moment_local_time.minute * 60 + moment_local_time.second
