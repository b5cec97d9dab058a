"""The network as the fare feed describes it: stop coordinates, line names and the timezone.

The feed is validated by terminals.fares (a broken feed is refused whole); this module then reads
the two files insight needs beyond fares (stops.txt coordinates, routes.txt names). File I/O only.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from insight.errors import InsightError
from terminals.errors import FeedInvalid
from terminals.fares import load_feed, sample_feed_dir
from terminals.fares.feed import FEED_FILE_BYTES_MAX


class FeedUnusable(InsightError):
    code = "feed_unusable"
    status = 422
    title = "The fare feed cannot be used"


@dataclass(frozen=True, slots=True)
class Network:
    timezone: str
    stops: dict[str, tuple[float, float]]  # stop_id -> (lat, lon); stops without both skipped
    stop_names: dict[str, str]
    route_names: dict[str, str]  # route_id -> short name (or long name, or the id)


def _read_text(feed: Path, name: str) -> str:
    if feed.is_file():
        with zipfile.ZipFile(feed) as archive:
            members = [m for m in archive.infolist() if m.filename.rsplit("/", 1)[-1] == name]
            if not members:
                return ""
            if members[0].file_size > FEED_FILE_BYTES_MAX:
                raise FeedUnusable(f"{name} is larger than {FEED_FILE_BYTES_MAX} bytes")
            return archive.read(members[0]).decode("utf-8")
    path = feed / name
    if not path.exists():
        return ""
    if path.stat().st_size > FEED_FILE_BYTES_MAX:
        raise FeedUnusable(f"{name} is larger than {FEED_FILE_BYTES_MAX} bytes")
    return path.read_text(encoding="utf-8")


def _rows(text: str) -> list[dict[str, str]]:
    return [
        {k.strip(): (v or "").strip() for k, v in row.items() if k}
        for row in csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    ]


def _coordinates(row: dict[str, str]) -> tuple[float, float] | None:
    try:
        lat, lon = float(row.get("stop_lat", "")), float(row.get("stop_lon", ""))
    except ValueError:
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def load_network(feed_dir: str | Path = "") -> Network:
    """The network of the feed in `feed_dir` (empty: the sample feed); FeedUnusable if it is
    refused or has no stop with coordinates."""
    path = Path(feed_dir) if feed_dir else sample_feed_dir()
    try:
        feed = load_feed(path)
    except FeedInvalid as refused:
        raise FeedUnusable(str(refused)) from None
    stops: dict[str, tuple[float, float]] = {}
    names: dict[str, str] = {}
    for row in _rows(_read_text(path, "stops.txt")):
        stop_id = row.get("stop_id", "")
        where = _coordinates(row)
        if stop_id and where is not None:
            stops[stop_id] = where
            names[stop_id] = row.get("stop_name") or stop_id
    if not stops:
        raise FeedUnusable(f"{path}: stops.txt has no stop with stop_lat and stop_lon")
    routes = {
        row["route_id"]: row.get("route_short_name")
        or row.get("route_long_name")
        or row["route_id"]
        for row in _rows(_read_text(path, "routes.txt"))
        if row.get("route_id")
    }
    return Network(timezone=feed.timezone, stops=stops, stop_names=names, route_names=routes)
