"""fare_leg_join_rules.txt (GTFS-Fares v2): whether two consecutive legs are one effective fare leg.

Pure. A row joins legs whose networks match its from/to network and, when it names stops, where
the first leg ends and the next begins (the stop itself or its parent station).
"""

from __future__ import annotations

from terminals.fares.engine import Leg, leg_network
from terminals.fares.feed import FareFeed


def _stop_matches(feed: FareFeed, wanted: str, stop_id: str | None) -> bool:
    """A join rule's stop names the stop itself or its parent station."""
    return not wanted or (
        stop_id is not None and wanted in (stop_id, feed.stop_parent.get(stop_id, ""))
    )


def joins(feed: FareFeed, previous: Leg, leg: Leg) -> bool:
    """Whether fare_leg_join_rules.txt makes `previous` and `leg` one effective fare leg."""
    before, after = leg_network(feed, previous), leg_network(feed, leg)
    return any(
        rule.from_network_id == before
        and rule.to_network_id == after
        and _stop_matches(feed, rule.from_stop_id, previous.alight_stop_id)
        and _stop_matches(feed, rule.to_stop_id, leg.board_stop_id)
        for rule in feed.join_rules
    )
