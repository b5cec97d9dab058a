"""Line and stop names for the history, from the fare feed the city publishes (the sample feed
unless ONECARD_INSIGHT_FEED_DIR names another, as for insight). Read once; a feed that cannot
be used leaves the ids as they are."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from insight.errors import InsightError
from insight.network import load_network
from insight.settings import get_insight_settings

log = logging.getLogger("clearing.web")


@dataclass(frozen=True, slots=True)
class Names:
    routes: dict[str, str]
    stops: dict[str, str]

    def route(self, route_id: str | None) -> str | None:
        return None if route_id is None else self.routes.get(route_id, route_id)

    def stop(self, stop_id: str | None) -> str | None:
        return None if stop_id is None else self.stops.get(stop_id, stop_id)


@lru_cache(maxsize=1)
def names() -> Names:
    try:
        network = load_network(get_insight_settings().feed_dir)
    except (InsightError, OSError) as error:
        log.warning("web: the fare feed's names are not available: %s", error)
        return Names({}, {})
    return Names(dict(network.route_names), dict(network.stop_names))
