"""Reading a fare feed's text files: a directory or a zip archive, bounded in size, UTF-8.

The only file I/O of the fare feed; a file too big or unreadable refuses the feed at once.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from terminals.errors import FeedInvalid
from terminals.fares.feed_model import FEED_FILE_BYTES_MAX, FeedProblem

# The files fares are read from. A full agency feed also has stop_times.txt, shapes.txt, trips.txt
# (often hundreds of megabytes): they say nothing about fares and are neither read nor bounded.
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
