"""The CSV layer of a fare feed: a table reader that collects problems, and the field parsers.

Pure: it takes file texts already read; every problem is appended, never raised, so one pass
names all of them in file order.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from terminals.fares.feed_columns import KNOWN_COLUMNS
from terminals.fares.feed_model import FEED_ROWS_MAX, FeedProblem


@dataclass(slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    rows: list[tuple[int, dict[str, str]]]  # (row number, values)


class FeedReader:
    """Collects the problems of one feed while reading it."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = files
        self.problems: list[FeedProblem] = []
        self.notices: list[FeedProblem] = []  # ignored columns: one per file and column

    def problem(
        self, file: str, row: int, field_name: str, message: str, *, unusable: str = ""
    ) -> None:
        """Note a problem; `unusable` names why a rule onecard cannot use is skippable (the
        row can be left out with --skip-unusable-rules), "" for a problem of the feed itself."""
        self.problems.append(FeedProblem(file, row, field_name, message, unusable))

    def table(self, name: str, required: Iterable[str], *, must_exist: bool = False) -> Table:
        text = self.files.get(name)
        if text is None:
            if must_exist:
                self.problem(name, 0, "", "required file is missing")
            return Table(name, (), [])
        reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
        try:
            header = [column.strip() for column in next(reader)]
        except StopIteration:
            self.problem(name, 0, "", "file is empty (no header row)")
            return Table(name, (), [])
        for column in required:
            if column not in header:
                self.problem(name, 1, column, "required column is missing")
        known = KNOWN_COLUMNS.get(name)
        for column in header:
            if known is not None and column not in known:
                self.notices.append(
                    FeedProblem(name, 1, column, "column not in the GTFS reference: ignored")
                )
        rows: list[tuple[int, dict[str, str]]] = []
        for number, values in enumerate(reader, start=2):
            if not values or all(not value.strip() for value in values):
                continue
            if len(rows) >= FEED_ROWS_MAX:
                self.problem(name, number, "", f"more than {FEED_ROWS_MAX} rows")
                break
            if len(values) != len(header):
                self.problem(
                    name, number, "", f"has {len(values)} values but the header has {len(header)}"
                )
            row = {
                column: (values[i].strip() if i < len(values) else "")
                for i, column in enumerate(header)
            }
            rows.append((number, row))
        return Table(name, tuple(header), rows)

    def required(self, table: Table, number: int, row: dict[str, str], column: str) -> str:
        value = row.get(column, "")
        if not value and column in table.columns:
            self.problem(table.name, number, column, "required value is empty")
        return value

    def integer(
        self, table: str, number: int, column: str, value: str, *, low: int, high: int
    ) -> int | None:
        if not value:
            return None
        try:
            parsed = int(value)
        except ValueError:
            self.problem(table, number, column, f"{value!r} is not an integer")
            return None
        if not low <= parsed <= high:
            self.problem(table, number, column, f"{parsed} is outside {low}..{high}")
            return None
        return parsed


AMOUNT_MINOR_MAX = 0xFFFFFFFF  # what a card's 4-byte amount field can carry


def minor_units(text: str, decimals: int, currency: str) -> int | str:
    """`text` in minor units (fen), or the problem with it."""
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return f"{text!r} is not a number"
    if not amount.is_finite():
        return f"{text!r} is not a finite amount"
    scaled = amount.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        return f"{text} has more than {decimals} decimals for {currency}"
    if abs(scaled) > AMOUNT_MINOR_MAX:
        return f"{text} is beyond what a card amount holds ({AMOUNT_MINOR_MAX} minor units)"
    return int(scaled)


def parse_time(value: str) -> int | None:
    parts = value.split(":")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        return None
    hours, minutes, seconds = (int(part) for part in parts)
    if minutes > 59 or seconds > 59:
        return None
    return hours * 3600 + minutes * 60 + seconds


def parse_date(value: str) -> date | None:
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


WIRE_ID_MAX = 64  # ids that travel in tap records (rider category, route, stop) fit the protocol
_WIRE_ID_COLUMNS = {
    ("rider_categories.txt", "rider_category_id"),
    ("routes.txt", "route_id"),
    ("stops.txt", "stop_id"),
}


def unique(reader: FeedReader, table: Table, column: str) -> dict[str, tuple[int, dict[str, str]]]:
    seen: dict[str, tuple[int, dict[str, str]]] = {}
    for number, row in table.rows:
        key = reader.required(table, number, row, column)
        if not key:
            continue
        if (table.name, column) in _WIRE_ID_COLUMNS and len(key) > WIRE_ID_MAX:
            reader.problem(table.name, number, column, f"longer than {WIRE_ID_MAX} characters")
            continue
        if key in seen:
            reader.problem(table.name, number, column, f"{key!r} repeats row {seen[key][0]}")
            continue
        seen[key] = (number, row)
    return seen
