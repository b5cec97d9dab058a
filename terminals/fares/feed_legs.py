"""Readers of how legs are validated and joined: onecard_networks.txt and fare_leg_join_rules.txt.

onecard_networks.txt (onecard extension, optional): `network_id,tap_mode`, tap_mode one of

    tap_on       (the default) riders validate once, at boarding: a rule of this network must
                 not need the alighting stop or time
    tap_on_off   riders validate at boarding and at alighting (sectional bus fares, metro gates):
                 rules of this network may name to_area_id / to_timeframe_group_id

and, optionally, `open_leg_minutes` (tap_on_off networks only): how long after boarding a tap on
the same line (and vehicle) is still its tap-off; a leg older than that was never tapped off and
costs the line's maximum. 1..1440; empty: 4 h (feed_model.OPEN_LEG_SECONDS_DEFAULT).

fare_leg_join_rules.txt (GTFS-Fares v2): consecutive legs whose networks (and, when given, the
stop the first leg ends at and the stop the next begins at, or their parent stations) match a
row are one effective fare leg. Each appends its problems to the FeedReader; no I/O.
"""

from __future__ import annotations

from collections.abc import Set

from terminals.fares.feed_csv import FeedReader
from terminals.fares.feed_model import FareLegJoinRule, TapMode

OPEN_LEG_MINUTES_MAX = 24 * 60
UNUSABLE_JOIN = "a join rule naming a network or stop the feed does not define"


def read_tap_modes(reader: FeedReader, networks: Set[str]) -> tuple[frozenset[str], dict[str, int]]:
    """onecard_networks.txt: (the networks whose riders tap on and off, their open-leg windows
    in seconds when the file sets one)."""
    table = reader.table("onecard_networks.txt", ("network_id", "tap_mode"))
    tap_off: set[str] = set()
    windows: dict[str, int] = {}
    seen: dict[str, int] = {}
    modes = [m.value for m in TapMode]
    for number, row in table.rows:
        network_id = reader.required(table, number, row, "network_id")
        mode = reader.required(table, number, row, "tap_mode")
        if network_id in seen:
            reader.problem(
                table.name, number, "network_id", f"{network_id!r} repeats row {seen[network_id]}"
            )
            continue
        seen[network_id] = number
        if network_id and network_id not in networks:
            reader.problem(table.name, number, "network_id", f"unknown network {network_id!r}")
        if mode and mode not in modes:
            reader.problem(table.name, number, "tap_mode", f"{mode!r} is not one of {modes}")
        elif mode == TapMode.TAP_ON_OFF and network_id:
            tap_off.add(network_id)
        minutes = reader.integer(
            table.name,
            number,
            "open_leg_minutes",
            row.get("open_leg_minutes", ""),
            low=1,
            high=OPEN_LEG_MINUTES_MAX,
        )
        if minutes is not None and mode != TapMode.TAP_ON_OFF:
            reader.problem(
                table.name, number, "open_leg_minutes", "only a tap_on_off network has open legs"
            )
        elif minutes is not None and network_id:
            windows[network_id] = minutes * 60
    return frozenset(tap_off), windows


def read_join_rules(
    reader: FeedReader, networks: Set[str], stops: Set[str]
) -> tuple[FareLegJoinRule, ...]:
    """fare_leg_join_rules.txt: from/to network required, from/to stop both or neither."""
    table = reader.table("fare_leg_join_rules.txt", ("from_network_id", "to_network_id"))
    rules: list[FareLegJoinRule] = []
    keys: dict[tuple[str, ...], int] = {}
    for number, row in table.rows:
        values = {
            column: row.get(column, "")
            for column in ("from_network_id", "to_network_id", "from_stop_id", "to_stop_id")
        }
        reader.required(table, number, row, "from_network_id")
        reader.required(table, number, row, "to_network_id")
        if bool(values["from_stop_id"]) != bool(values["to_stop_id"]):
            missing = "to_stop_id" if values["from_stop_id"] else "from_stop_id"
            reader.problem(table.name, number, missing, "from_stop_id and to_stop_id go together")
            continue
        usable = True
        for column in ("from_network_id", "to_network_id"):
            if values[column] and values[column] not in networks:
                usable = False
                reader.problem(
                    table.name,
                    number,
                    column,
                    f"unknown network {values[column]!r}",
                    unusable=UNUSABLE_JOIN,
                )
        for column in ("from_stop_id", "to_stop_id"):
            if values[column] and stops and values[column] not in stops:
                usable = False
                reader.problem(
                    table.name,
                    number,
                    column,
                    f"unknown stop {values[column]!r}",
                    unusable=UNUSABLE_JOIN,
                )
        key = tuple(values.values())
        if key in keys:
            reader.problem(table.name, number, "", f"repeats row {keys[key]}")
            continue
        keys[key] = number
        if usable and values["from_network_id"] and values["to_network_id"]:
            rules.append(FareLegJoinRule(number, **values))
    return tuple(rules)
