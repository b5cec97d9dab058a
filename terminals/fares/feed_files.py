"""Reading a fare feed's text files: a directory or a zip archive, bounded in size, UTF-8.

The only file I/O of the fare feed; a file too big or unreadable refuses the feed at once.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

from terminals.errors import FeedInvalid
from terminals.fares.feed_model import FEED_FILE_BYTES_MAX, FeedProblem
from terminals.fares.feed_places import route_stops

# The files fares are read from. A full agency feed also has stop_times.txt, shapes.txt, trips.txt
# (often hundreds of megabytes): trips.txt and stop_times.txt are only streamed, for the stops
# each route serves (read_route_stops); the others are never read.
FEED_FILES = frozenset(
    {
        "agency.txt",
        "areas.txt",
        "calendar.txt",
        "calendar_dates.txt",
        "fare_leg_join_rules.txt",
        "fare_leg_rules.txt",
        "fare_media.txt",
        "fare_products.txt",
        "fare_transfer_rules.txt",
        "networks.txt",
        "onecard_networks.txt",
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


def read_zip(feed_zip: Path) -> dict[str, str]:
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


def read_feed_files(feed_dir: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    if feed_dir.is_file() and feed_dir.suffix.lower() == ".zip":
        return read_zip(feed_dir)
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


SCHEDULE_FILES = ("trips.txt", "stop_times.txt")


def _csv_rows(handle: io.TextIOBase) -> Iterator[dict[str, str]]:
    reader = csv.reader(handle)
    header = [column.strip().lstrip("\ufeff") for column in next(reader, [])]
    for values in reader:
        yield {column: value.strip() for column, value in zip(header, values, strict=False)}


def read_route_stops(feed: Path) -> dict[str, frozenset[str]] | None:
    """route_id -> stops served, streamed from trips.txt and stop_times.txt of a feed directory
    or .zip (any size: only two columns of each row are kept); None if either file is absent."""
    try:
        if feed.is_file() and feed.suffix.lower() == ".zip":
            with zipfile.ZipFile(feed) as archive:
                names = {m.filename.rsplit("/", 1)[-1]: m.filename for m in archive.infolist()}
                if not all(name in names for name in SCHEDULE_FILES):
                    return None
                with (
                    archive.open(names["trips.txt"]) as trips,
                    archive.open(names["stop_times.txt"]) as times,
                ):
                    return route_stops(
                        _csv_rows(io.TextIOWrapper(trips, encoding="utf-8-sig")),
                        _csv_rows(io.TextIOWrapper(times, encoding="utf-8-sig")),
                    )
        paths = [feed / name for name in SCHEDULE_FILES]
        if not all(path.is_file() for path in paths):
            return None
        with (
            paths[0].open(encoding="utf-8-sig", newline="") as trips,
            paths[1].open(encoding="utf-8-sig", newline="") as times,
        ):
            return route_stops(_csv_rows(trips), _csv_rows(times))
    except (OSError, UnicodeDecodeError, csv.Error, zipfile.BadZipFile) as error:
        raise FeedInvalid(
            [FeedProblem("stop_times.txt", 0, "", f"cannot be read: {error}")]
        ) from None
