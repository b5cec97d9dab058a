"""`onecard fares validate|price`: check a GTFS-Fares v2 tariff before it reaches a bus.

Parses arguments and prints; the rules live in terminals.fares.
"""

from __future__ import annotations

import csv
import sys
from datetime import datetime
from pathlib import Path
from typing import NoReturn
from zoneinfo import ZoneInfo

import typer

from terminals.errors import FeedInvalid, NoFare
from terminals.fares.engine import EMPTY_STATE, Leg, RideState, price_tap
from terminals.fares.feed import CardType, check_feed, load_feed

TAPS_MAX = 1_000_000
CARD_TYPES = tuple(t.value for t in CardType)
TAP_COLUMNS = ("card", "card_type", "time", "route_id", "stop_id")
# Optional: where and when the rider validated on exit (metro gates); buses leave them empty.
EXIT_COLUMNS = ("alight_stop_id", "alight_time")
OUTPUT_COLUMNS = (
    "card",
    "time",
    "route_id",
    "stop_id",
    "card_type",
    "rider_category",
    "fare_fen",
    "full_fare_fen",
    "fare_rule",
    "transfer_rule",
    "cap_progress",
    "error",
)

fares_app = typer.Typer(help="Check and try out a GTFS-Fares v2 fare feed.", no_args_is_help=True)


@fares_app.command("validate")
def validate(
    feed_dir: Path = typer.Argument(..., help="Directory (or .zip) of the GTFS(-Fares v2) feed."),
) -> None:
    """Check a feed and list every problem (file, row, field); exit 1 if there is any.

    A valid feed may still have warnings (e.g. a concession card type priced as the default
    rider category): they are listed, and the feed is accepted."""
    report = check_feed(feed_dir)
    for problem in report.problems:
        typer.echo(str(problem))
    if report.problems:
        typer.echo(f"{len(report.problems)} problem(s): the feed would be refused.", err=True)
        raise typer.Exit(1)
    for warning in report.warnings:
        typer.echo(f"warning: {warning}")
    suffix = f" ({len(report.warnings)} warning(s))" if report.warnings else ""
    typer.echo(f"{feed_dir}: valid{suffix}")


def _parse_time(text: str, zone: ZoneInfo) -> datetime:
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _refuse(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)


def _read_taps(taps: Path, zone: ZoneInfo) -> list[tuple[dict[str, str], Leg]]:
    """The taps file's rows and their legs; a file that is not a UTF-8 CSV of taps is refused
    with one line naming the file (and row and field where there is one)."""
    try:
        return _parse_taps(taps, zone)
    except UnicodeDecodeError:
        _refuse(f"{taps}: not a text file (a UTF-8 CSV of taps is expected)")
    except csv.Error as error:
        _refuse(f"{taps}: not a CSV file ({error})")
    except OSError as error:
        _refuse(f"{taps}: cannot be read ({error.strerror})")


def _parse_taps(taps: Path, zone: ZoneInfo) -> list[tuple[dict[str, str], Leg]]:
    with taps.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in TAP_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            _refuse(f"{taps}: missing column(s) {', '.join(missing)}")
        rows: list[tuple[dict[str, str], Leg]] = []
        for number, row in enumerate(reader, start=2):
            if len(rows) >= TAPS_MAX:
                _refuse(f"{taps}: more than {TAPS_MAX} taps")
            times: dict[str, datetime | None] = {}
            for column in ("time", "alight_time"):
                text = row.get(column) or ""
                if column == "alight_time" and not text.strip():
                    times[column] = None
                    continue
                try:
                    times[column] = _parse_time(text, zone)
                except ValueError as error:
                    _refuse(f"{taps}, row {number}, field {column}: {error}")
            alight_stop = (row.get("alight_stop_id") or "").strip() or None
            if (alight_stop is None) != (times["alight_time"] is None):
                _refuse(
                    f"{taps}, row {number}, field alight_time: give alight_stop_id and "
                    "alight_time together, or neither"
                )
            leg = Leg(
                row["route_id"], row["stop_id"], times["time"], alight_stop, times["alight_time"]
            )
            rows.append((row, leg))
    return rows


@fares_app.command("price")
def price(
    feed_dir: Path = typer.Argument(..., help="Directory (or .zip) of the GTFS(-Fares v2) feed."),
    taps: Path = typer.Option(
        ...,
        "--taps",
        exists=True,
        dir_okay=False,
        readable=True,
        help="CSV: card,card_type,time,route_id,stop_id (optional: alight_stop_id,alight_time)",
    ),
) -> None:
    """Price a day of taps per card (in time order) and print one CSV line per tap."""
    try:
        feed = load_feed(feed_dir)
    except FeedInvalid as refused:
        for problem in refused.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(2) from refused
    rows = _read_taps(taps, ZoneInfo(feed.timezone))
    order = sorted(range(len(rows)), key=lambda i: (rows[i][0]["card"], rows[i][1].board_at, i))
    states: dict[str, RideState] = {}
    results: list[dict[str, object]] = [{} for _ in rows]
    failures = 0
    for index in order:
        row, leg = rows[index]
        out: dict[str, object] = {c: row[c] for c in TAP_COLUMNS}
        if row["card_type"] not in CARD_TYPES:
            failures += 1
            out["error"] = f"unknown card type {row['card_type']!r}: one of {', '.join(CARD_TYPES)}"
            results[index] = out
            continue
        try:
            quote = price_tap(feed, row["card_type"], states.get(row["card"], EMPTY_STATE), leg)
        except NoFare as error:
            failures += 1
            out["error"] = error.message
        else:
            states[row["card"]] = quote.state
            out.update(
                rider_category=quote.rider_category_id,
                fare_fen=quote.fare_fen,
                full_fare_fen=quote.full_fare_fen,
                fare_rule=quote.fare_rule,
                transfer_rule=quote.transfer_rule or "",
                cap_progress=";".join(
                    f"{c.cap_id} {c.spent_fen}/{c.amount_fen}" for c in quote.caps
                ),
            )
        results[index] = out
    writer = csv.DictWriter(sys.stdout, fieldnames=OUTPUT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for out in results:
        writer.writerow(out)
    if failures:
        typer.echo(f"{failures} tap(s) could not be priced.", err=True)
        raise typer.Exit(1)
