"""Problems of a fare feed grouped for a reader: one line per kind, its count and first rows.

A real agency feed can have hundreds of problems of a few kinds (185 rules naming one undefined
timeframe group); a line per row hides the few things to fix. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from terminals.fares.feed_model import FeedProblem

FIRST_ROWS = 3
_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|\b\d+\b")


@dataclass(frozen=True, slots=True)
class ProblemGroup:
    file: str
    field: str
    kind: str  # the message with its values elided
    count: int
    rows: tuple[int, ...]  # first rows (0 = the whole file)
    first: FeedProblem
    unusable: str

    def __str__(self) -> str:
        if self.count == 1:
            return str(self.first)
        where = self.file + (f", field {self.field}" if self.field else "")
        rows = [str(r) for r in self.rows if r]
        first = f", first at row(s) {', '.join(rows)}" if rows else ""
        return f"{where}: {self.count} x {self.kind}{first} (e.g. {self.first.message})"


def problem_kind(message: str) -> str:
    return _VALUES.sub("…", message)


def group_problems(problems: Iterable[FeedProblem]) -> list[ProblemGroup]:
    """Problems grouped by file, field and kind, in the order each kind first appears."""
    groups: dict[tuple[str, str, str], list[FeedProblem]] = {}
    for problem in problems:
        key = (problem.file, problem.field, problem_kind(problem.message))
        groups.setdefault(key, []).append(problem)
    return [
        ProblemGroup(
            file,
            field_name,
            kind,
            len(members),
            tuple(p.row for p in members[:FIRST_ROWS]),
            members[0],
            members[0].unusable,
        )
        for (file, field_name, kind), members in groups.items()
    ]
