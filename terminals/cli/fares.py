"""`onecard fares validate|price`: check a GTFS-Fares v2 tariff before it reaches a bus.

Parses arguments and prints; the rules live in terminals.fares.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import NoReturn
from zoneinfo import ZoneInfo

import typer

from terminals.cli.fares_explain import print_explained
from terminals.errors import FeedInvalid, NoFare
from terminals.fares.engine import EMPTY_STATE, FareQuote, Leg, RideState
from terminals.fares.feed import CardType, FareFeed, FeedProblem, check_feed, read_feed
from terminals.fares.feed_report import group_problems
from terminals.fares.sectional import alight_step, plan_tap, price_leg, unfinished_step

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


SKIP_OPTION = typer.Option(
    False,
    "--skip-unusable-rules",
    help="Load a feed whose only problems are rules onecard cannot use (they name what the "
    "feed never defines, or need a tap-off on a network whose riders tap only on), without "
    "those rules; every rule left out is listed with its reason.",
)


def _say_refused(problems: list[FeedProblem], *, err: bool) -> None:
    """The problems, one line per kind, and what to type when only unusable rules are wrong."""
    for group in group_problems(problems):
        typer.echo(str(group), err=err)
    if problems and all(p.unusable for p in problems):
        typer.echo(
            f"{len(problems)} problem(s), all in rules onecard cannot use: add "
            "--skip-unusable-rules to load the feed without them.",
            err=True,
        )
    else:
        typer.echo(f"{len(problems)} problem(s): the feed would be refused.", err=True)


def _say_skipped(skipped: list[FeedProblem], *, err: bool) -> None:
    for group in group_problems(skipped):
        typer.echo(f"skipped: {group} [{group.unusable}]", err=err)


@fares_app.command("validate")
def validate(
    feed_dir: Path = typer.Argument(..., help="Directory (or .zip) of the GTFS(-Fares v2) feed."),
    skip_unusable_rules: bool = SKIP_OPTION,
) -> None:
    """Check a feed and list its problems, one line per kind (count and first rows); exit 1 if
    there is any.

    Columns the GTFS reference does not define are ignored, with one notice per column. A
    valid feed may still have warnings (e.g. a concession card type priced as the default
    rider category): they are listed, and the feed is accepted."""
    report = check_feed(feed_dir, skip_unusable_rules=skip_unusable_rules)
    for notice in report.notices:
        typer.echo(f"notice: {notice}")
    if report.problems:
        _say_refused(report.problems, err=False)
        raise typer.Exit(1)
    _say_skipped(report.skipped, err=False)
    for warning in report.warnings:
        typer.echo(f"warning: {warning}")
    notes = []
    if report.warnings:
        notes.append(f"{len(report.warnings)} warning(s)")
    if report.skipped:
        notes.append(f"{len({(p.file, p.row) for p in report.skipped})} rule(s) skipped")
    suffix = f" ({', '.join(notes)})" if notes else ""
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


def _load(feed_dir: Path, skip_unusable_rules: bool) -> FareFeed:
    try:
        loaded = read_feed(feed_dir, skip_unusable_rules=skip_unusable_rules)
    except FeedInvalid as refused:
        _say_refused(list(refused.problems), err=True)
        raise typer.Exit(2) from refused
    _say_skipped(loaded.skipped, err=True)
    return loaded.feed


@dataclass(slots=True)
class _Card:
    """One card of the taps file: its type and the state its card would carry."""

    card_type: str
    state: RideState = EMPTY_STATE


def _price_one(feed: FareFeed, card: _Card, leg: Leg) -> FareQuote:
    """The leg priced by the validators' own rules (terminals.fares.sectional), the state kept
    in memory instead of on the card: a leg of a two-tap line is a boarding then its tap-off, or,
    without alight_stop_id, a forgotten tap-off (the line's maximum); join rules apply."""
    if feed.taps_off(leg.route_id):
        steps = plan_tap(
            feed, card.card_type, card.state, leg.route_id, leg.board_stop_id, leg.board_at
        )
        boarded = steps[-1].quote.state
        if leg.alight_stop_id is None or leg.alight_at is None:
            step = unfinished_step(feed, card.card_type, boarded)
            quote = replace(
                step.quote,
                fare_rule="no tap-off, line maximum: "
                + step.quote.fare_rule.removeprefix("unfinished:"),
            )
        else:
            quote = alight_step(
                feed, card.card_type, boarded, leg.alight_stop_id, leg.alight_at
            ).quote
    else:
        quote = price_leg(feed, card.card_type, card.state, leg)
    card.state = quote.state
    return quote


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
    skip_unusable_rules: bool = SKIP_OPTION,
    explain: bool = typer.Option(
        False,
        "--explain",
        help="Instead of CSV, a table per tap: every fare product that matched (by fare medium, "
        "rider category and priority) and which one was charged.",
    ),
) -> None:
    """Price a day of taps per card (in time order) and print one CSV line per tap.

    Consecutive legs that fare_leg_join_rules.txt joins are priced as one effective leg; a leg
    of a tap_on_off network without alight_stop_id costs the line's maximum fare."""
    feed = _load(feed_dir, skip_unusable_rules)
    rows = _read_taps(taps, ZoneInfo(feed.timezone))
    order = sorted(range(len(rows)), key=lambda i: (rows[i][0]["card"], rows[i][1].board_at, i))
    cards: dict[str, _Card] = {}
    results: list[dict[str, object]] = [{} for _ in rows]
    quotes: list[FareQuote | None] = [None] * len(rows)
    failures = 0
    for index in order:
        row, leg = rows[index]
        out: dict[str, object] = {c: row[c] for c in TAP_COLUMNS}
        results[index] = out
        if row["card_type"] not in CARD_TYPES:
            failures += 1
            out["error"] = f"unknown card type {row['card_type']!r}: one of {', '.join(CARD_TYPES)}"
            continue
        card = cards.setdefault(row["card"], _Card(row["card_type"]))
        card.card_type = row["card_type"]
        try:
            quote = _price_one(feed, card, leg)
        except NoFare as error:
            failures += 1
            out["error"] = error.message
            continue
        quotes[index] = quote
        out.update(
            rider_category=quote.rider_category_id,
            fare_fen=quote.fare_fen,
            full_fare_fen=quote.full_fare_fen,
            fare_rule=quote.fare_rule,
            transfer_rule=quote.transfer_rule or "",
            cap_progress=";".join(f"{c.cap_id} {c.spent_fen}/{c.amount_fen}" for c in quote.caps),
        )
    if explain:
        print_explained(feed, rows, results, quotes)
    else:
        writer = csv.DictWriter(sys.stdout, fieldnames=OUTPUT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for out in results:
            writer.writerow(out)
    if failures:
        typer.echo(f"{failures} tap(s) could not be priced.", err=True)
        raise typer.Exit(1)
