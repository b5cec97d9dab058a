"""Checks of a fare feed across its tables: what no single table's reader can see.

Each takes the rows already read and appends its problems to the FeedReader; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from terminals.fares.feed_csv import FeedReader
from terminals.fares.feed_model import (
    CAPS_PER_CARD_MAX,
    CardType,
    FareCap,
    FareLegRule,
    FareTransferRule,
    RiderCategory,
    id_tag,
)


def check_cap_slots(
    reader: FeedReader, caps: list[FareCap], categories: Mapping[str, RiderCategory]
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


def check_files_the_rules_need(reader: FeedReader, leg_rules: list[FareLegRule]) -> None:
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


def check_buses_priced_at_tap_on(
    reader: FeedReader,
    leg_rules: list[FareLegRule],
    has_priority: bool,
    route_type: Mapping[str, int],
    route_network: Mapping[str, str],
    tap_off_networks: frozenset[str] = frozenset(),
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
        if network in tap_off_networks:
            continue  # its riders tap off: an alighting-dependent rule prices them
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
            "need the alighting stop or time, and their riders tap only on: give them a rule "
            "without, or mark the network tap_on_off in onecard_networks.txt",
        )


def check_default_category(
    reader: FeedReader, categories: Mapping[str, RiderCategory], concessions: Mapping[str, str]
) -> None:
    """Without a default rider category, every card type needs a category to ride under."""
    defaults = [c for c in categories.values() if c.is_default]
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


def check_card_tags(
    reader: FeedReader,
    leg_groups: Iterable[str],
    caps: Iterable[FareCap],
    transfer_rules: Iterable[FareTransferRule],
) -> None:
    """Ids that travel on the card as 2-byte tags must not collide."""
    tags: dict[int, str] = {}
    pairs = {f"{r.from_leg_group_id}>{r.to_leg_group_id}" for r in transfer_rules}
    for name in sorted(set(leg_groups) | {c.cap_id for c in caps} | pairs):
        tag = id_tag(name)
        if tag in tags and tags[tag] != name:
            reader.problem(
                "fare_leg_rules.txt",
                0,
                "leg_group_id",
                f"ids {tags[tag]!r} and {name!r} share a card tag; rename one",
            )
        tags[tag] = name
