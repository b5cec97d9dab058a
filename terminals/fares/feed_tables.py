"""One reader per fare table of a GTFS-Fares v2 feed (plus onecard's x_ extension files); the
places and times they refer to are read by feed_places.

Each reader takes the FeedReader, the values of the tables it refers to, and returns its typed
rows, appending every problem it finds in row order; none of them raises or does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from terminals.errors import invariant
from terminals.fares.feed_csv import FeedReader, Table, minor_units, unique
from terminals.fares.feed_model import (
    TIMEZONE_DEFAULT,
    CapPeriod,
    CardType,
    DurationLimitType,
    FareCap,
    FareLegRule,
    FareMedia,
    FareProductPrice,
    FareTransferRule,
    FareTransferType,
    RiderCategory,
    currency_decimals,
)

INT32_MAX = 2**31 - 1
BUS_ROUTE_TYPE = 3  # GTFS routes.route_type of a bus


def read_agency(reader: FeedReader) -> str:
    """agency.txt: only the time zone matters to fares (the service day of a tap)."""
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
    return timezone


def read_fare_media(reader: FeedReader) -> dict[str, FareMedia]:
    """fare_media.txt."""
    media_table = reader.table("fare_media.txt", ("fare_media_id", "fare_media_type"))
    media: dict[str, FareMedia] = {}
    for key, (number, row) in unique(reader, media_table, "fare_media_id").items():
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
    return media


def card_media_id(media: Mapping[str, FareMedia]) -> str:
    """The medium of a transit card (fare_media_type 2), the first by id; "" if none."""
    card_media = sorted(m.fare_media_id for m in media.values() if m.media_type == 2)
    return card_media[0] if card_media else ""


def read_rider_categories(reader: FeedReader) -> dict[str, RiderCategory]:
    """rider_categories.txt; at most one default category."""
    categories_table = reader.table(
        "rider_categories.txt", ("rider_category_id", "rider_category_name")
    )
    categories: dict[str, RiderCategory] = {}
    for key, (number, row) in unique(reader, categories_table, "rider_category_id").items():
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
    return categories


@dataclass(frozen=True, slots=True)
class Products:
    """fare_products.txt read: its valid prices, their currencies, every product id it names."""

    prices: tuple[FareProductPrice, ...]
    currencies: frozenset[str]
    product_ids: frozenset[str]


def read_fare_products(
    reader: FeedReader,
    categories: Mapping[str, RiderCategory],
    media: Mapping[str, FareMedia],
) -> Products:
    """fare_products.txt: one price per product, rider category and medium, one currency."""
    products_table = reader.table(
        "fare_products.txt", ("fare_product_id", "amount", "currency"), must_exist=True
    )
    products: list[FareProductPrice] = []
    product_keys: dict[tuple[str, str, str], int] = {}
    currencies: set[str] = set()
    for number, row in products_table.rows:
        price = _product_price(reader, products_table, number, row, categories, media)
        if price is None:
            continue
        product_key = (price.fare_product_id, price.rider_category_id, price.fare_media_id)
        if product_key in product_keys:
            reader.problem(
                "fare_products.txt",
                number,
                "fare_product_id",
                f"{price.fare_product_id!r} for rider category {price.rider_category_id!r} "
                f"and medium {price.fare_media_id!r} repeats row {product_keys[product_key]}",
            )
            continue
        product_keys[product_key] = number
        currencies.add(price.currency)
        products.append(price)
    if len(currencies) > 1:
        reader.problem("fare_products.txt", 0, "currency", f"mixed currencies {sorted(currencies)}")
    # Every product named in the file exists, even if one of its rows is broken (that row has
    # its own problem; naming the product unknown elsewhere would only mislead).
    product_ids = {row.get("fare_product_id", "") for _, row in products_table.rows} - {""}
    return Products(tuple(products), frozenset(currencies), frozenset(product_ids))


def _product_price(
    reader: FeedReader,
    products_table: Table,
    number: int,
    row: dict[str, str],
    categories: Mapping[str, RiderCategory],
    media: Mapping[str, FareMedia],
) -> FareProductPrice | None:
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
        return None
    if not (product_id and currency and amount_text):
        return None
    invariant(decimals is not None, "currency checked above")
    minor = minor_units(amount_text, decimals or 0, currency)
    if isinstance(minor, str):
        reader.problem("fare_products.txt", number, "amount", minor)
        return None
    return FareProductPrice(product_id, category, medium, minor, currency)


@dataclass(frozen=True, slots=True)
class LegRuleRefs:
    """What fare_leg_rules.txt refers to, read from the tables before it."""

    product_ids: frozenset[str]
    networks: set[str]
    areas: set[str]
    timeframe_groups: set[str]
    route_network: Mapping[str, str]
    route_type: Mapping[str, int]
    tap_off_networks: frozenset[str] = frozenset()


UNUSABLE_REF = "a rule naming {what} the feed does not define"
UNUSABLE_EXIT = "an alighting-dependent rule on a network not marked tap_on_off"


_LEG_KEY_COLUMNS = (
    "network_id",
    "from_area_id",
    "to_area_id",
    "from_timeframe_group_id",
    "to_timeframe_group_id",
    "fare_product_id",
)


def read_fare_leg_rules(reader: FeedReader, refs: LegRuleRefs) -> tuple[list[FareLegRule], bool]:
    """fare_leg_rules.txt: (the rules in file order, whether the file has rule_priority)."""
    legs_table = reader.table("fare_leg_rules.txt", ("fare_product_id",), must_exist=True)
    has_priority = "rule_priority" in legs_table.columns
    leg_rules: list[FareLegRule] = []
    leg_keys: dict[tuple[str, ...], int] = {}
    for number, row in legs_table.rows:
        product_id = reader.required(legs_table, number, row, "fare_product_id")
        # GTFS primary key: network, from/to area, from/to timeframe and product.
        leg_key = tuple(row.get(column, "") for column in _LEG_KEY_COLUMNS)
        if leg_key in leg_keys:
            reader.problem(
                "fare_leg_rules.txt",
                number,
                "fare_product_id",
                f"repeats row {leg_keys[leg_key]} (same network, areas, timeframes and product)",
            )
        leg_keys.setdefault(leg_key, number)
        _check_leg_rule_refs(reader, number, row, refs)
        priority = reader.integer(
            "fare_leg_rules.txt",
            number,
            "rule_priority",
            row.get("rule_priority", ""),
            low=0,
            high=INT32_MAX,
        )
        _check_bus_rule_at_tap_on(reader, number, row, refs)
        leg_rules.append(
            FareLegRule(
                number,
                row.get("leg_group_id", ""),
                row.get("network_id", ""),
                row.get("from_area_id", ""),
                row.get("to_area_id", ""),
                row.get("from_timeframe_group_id", ""),
                row.get("to_timeframe_group_id", ""),
                product_id,
                priority or 0,
            )
        )
    return leg_rules, has_priority


def _check_leg_rule_refs(
    reader: FeedReader, number: int, row: dict[str, str], refs: LegRuleRefs
) -> None:
    name = "fare_leg_rules.txt"
    product_id = row.get("fare_product_id", "")
    if product_id and product_id not in refs.product_ids:
        reader.problem(
            name,
            number,
            "fare_product_id",
            f"unknown fare product {product_id!r}",
            unusable=UNUSABLE_REF.format(what="a fare product"),
        )
    network_id = row.get("network_id", "")
    if network_id and network_id not in refs.networks:
        reader.problem(
            name,
            number,
            "network_id",
            f"unknown network {network_id!r}",
            unusable=UNUSABLE_REF.format(what="a network"),
        )
    for column in ("from_area_id", "to_area_id"):
        if row.get(column) and row[column] not in refs.areas:
            reader.problem(
                name,
                number,
                column,
                f"unknown area {row[column]!r}",
                unusable=UNUSABLE_REF.format(what="an area"),
            )
    for column in ("from_timeframe_group_id", "to_timeframe_group_id"):
        if row.get(column) and row[column] not in refs.timeframe_groups:
            reader.problem(
                name,
                number,
                column,
                f"unknown timeframe group {row[column]!r}",
                unusable=UNUSABLE_REF.format(what="a timeframe group"),
            )


def _check_bus_rule_at_tap_on(
    reader: FeedReader, number: int, row: dict[str, str], refs: LegRuleRefs
) -> None:
    """A rule of a network with bus routes must not need the alighting stop or time, unless
    the network's riders tap on and off (onecard_networks.txt tap_mode tap_on_off)."""
    if not (row.get("to_area_id") or row.get("to_timeframe_group_id")):
        return
    network_id = row.get("network_id", "")
    if network_id in refs.tap_off_networks:
        return
    bus_routes = [
        r
        for r, n in refs.route_network.items()
        if n == network_id and refs.route_type.get(r) == BUS_ROUTE_TYPE
    ]
    # A rule of no network may name an alighting area (metro zones): checked later
    # (feed_checks.check_buses_priced_at_tap_on) that buses keep a rule a tap-on alone matches.
    if network_id and bus_routes:
        reader.problem(
            "fare_leg_rules.txt",
            number,
            "to_area_id" if row.get("to_area_id") else "to_timeframe_group_id",
            f"a rule for buses of network {network_id!r} depends on the alighting stop or "
            "time, but its riders tap only on: mark the network tap_on_off in "
            "onecard_networks.txt",
            unusable=UNUSABLE_EXIT,
        )


def read_fare_transfer_rules(
    reader: FeedReader, leg_groups: set[str], product_ids: frozenset[str]
) -> tuple[FareTransferRule, ...]:
    """fare_transfer_rules.txt."""
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
                    name,
                    number,
                    column,
                    f"unknown leg group {value!r} (not in fare_leg_rules.txt)",
                    unusable=UNUSABLE_REF.format(what="a leg group"),
                )
        count = _transfer_count(reader, number, row)
        limit, limit_type = _duration_limit(reader, number, row)
        transfer_type_text = reader.required(table, number, row, "fare_transfer_type")
        transfer_type = reader.integer(
            name, number, "fare_transfer_type", transfer_type_text, low=0, high=2
        )
        product_id = row.get("fare_product_id", "")
        if product_id and product_id not in product_ids:
            reader.problem(
                name,
                number,
                "fare_product_id",
                f"unknown fare product {product_id!r}",
                unusable=UNUSABLE_REF.format(what="a fare product"),
            )
        key = (
            from_group,
            to_group,
            product_id,
            row.get("transfer_count", ""),
            row.get("duration_limit", ""),
        )
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


def _transfer_count(reader: FeedReader, number: int, row: dict[str, str]) -> int | None:
    """transfer_count: set exactly when the rule goes from a leg group to the same group."""
    name = "fare_transfer_rules.txt"
    from_group = row.get("from_leg_group_id", "")
    to_group = row.get("to_leg_group_id", "")
    count_text = row.get("transfer_count", "")
    count = reader.integer(name, number, "transfer_count", count_text, low=-1, high=INT32_MAX)
    if count == 0:
        reader.problem(name, number, "transfer_count", "0 is not allowed (-1 = unlimited, or >= 1)")
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
    return count


def _duration_limit(
    reader: FeedReader, number: int, row: dict[str, str]
) -> tuple[int | None, int | None]:
    """(duration_limit, duration_limit_type): both set or both empty."""
    name = "fare_transfer_rules.txt"
    limit = reader.integer(
        name, number, "duration_limit", row.get("duration_limit", ""), low=1, high=INT32_MAX
    )
    limit_type_text = row.get("duration_limit_type", "")
    limit_type = reader.integer(name, number, "duration_limit_type", limit_type_text, low=0, high=3)
    if row.get("duration_limit") and not limit_type_text:
        reader.problem(
            name, number, "duration_limit_type", "is required when duration_limit is set"
        )
    if limit_type_text and not row.get("duration_limit"):
        reader.problem(
            name, number, "duration_limit_type", "is forbidden when duration_limit is empty"
        )
    return limit, limit_type


def read_fare_caps(
    reader: FeedReader,
    categories: Mapping[str, RiderCategory],
    networks: set[str],
    currency: str,
) -> list[FareCap]:
    """x_fare_caps.txt (onecard extension: GTFS has no capping), in the fares' currency."""
    caps_table = reader.table(
        "x_fare_caps.txt", ("cap_id", "rider_category_id", "period", "amount", "currency")
    )
    caps: list[FareCap] = []
    for cap_id, (number, row) in unique(reader, caps_table, "cap_id").items():
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
        amount_fen = _cap_amount(reader, caps_table, number, row, currency)
        if amount_fen is None:
            continue
        caps.append(FareCap(cap_id, category, network_id, period, amount_fen))
    return caps


def _cap_amount(
    reader: FeedReader, caps_table: Table, number: int, row: dict[str, str], currency: str
) -> int | None:
    """The cap in minor units of the fares' currency, None (with its problem) if it is not one."""
    cap_currency = reader.required(caps_table, number, row, "currency")
    if cap_currency and cap_currency != currency:
        reader.problem(
            "x_fare_caps.txt",
            number,
            "currency",
            f"{cap_currency!r} differs from the fares' {currency!r}",
        )
        return None
    amount_text = reader.required(caps_table, number, row, "amount")
    cap_decimals = currency_decimals(currency)
    minor = minor_units(amount_text, 2 if cap_decimals is None else cap_decimals, currency)
    if isinstance(minor, int) and minor < 0:
        minor = f"{amount_text} is negative: a cap is a non-negative amount"
    if isinstance(minor, str):
        reader.problem("x_fare_caps.txt", number, "amount", minor)
        return None
    return minor


def read_concessions(reader: FeedReader, categories: Mapping[str, RiderCategory]) -> dict[str, str]:
    """x_concessions.txt (onecard extension): card type -> rider category."""
    concessions_table = reader.table("x_concessions.txt", ("card_type", "rider_category_id"))
    concessions: dict[str, str] = {}
    for card_type, (number, row) in unique(reader, concessions_table, "card_type").items():
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
    return concessions
