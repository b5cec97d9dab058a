"""What a clearing run reports: its counters, its listener, and how it fails (pure)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from clearing.engine.shards import ALL_SHARDS, ShardRange

# An error as finance staff read it in a quarantine note or a CLI line (one line, bounded).
ERROR_NOTE_LENGTH_MAX = 500


class EngineError(Exception):
    code = "engine_error"


class DatabaseFailed(EngineError):
    """The database itself failed during a run (not one record): the run stopped cleanly."""

    code = "database_failed"


def describe(error: BaseException) -> str:
    """An error in one line: its type and first line (the driver's, under SQLAlchemy's)."""
    cause = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"[:ERROR_NOTE_LENGTH_MAX]


class RunListener:
    """What a run tells whoever watches it (the CLI's progress bar); this one ignores it all."""

    def cleared(self, records: int) -> None:
        """This run took `records` more records off the backlog."""

    def waiting(self, other_runs: tuple[int, ...]) -> None:
        """The clearing lock is held (by these other clearing runs, or a settlement when
        none): this run waits for it."""

    def backlog(self, records: int) -> None:
        """After a wait: `records` are still staged (others may have cleared some)."""


@dataclass
class ChunkResult:
    seen: int = 0
    posted: int = 0
    duplicates: int = 0
    voided: int = 0
    quarantined: int = 0
    resolved: int = 0
    amount_fen_posted: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def merge(self, other: ChunkResult) -> None:
        self.seen += other.seen
        _tally(self, other)


@dataclass
class RunSummary:
    run_id: int
    records_seen: int = 0
    posted: int = 0
    duplicates: int = 0
    voided: int = 0
    quarantined: int = 0
    resolved: int = 0
    amount_fen_posted: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    # Other clearing runs this run waited for (it shared the backlog with them), and how often.
    waited_for: set[int] = field(default_factory=set)
    waits: int = 0

    def add(self, other: ChunkResult) -> None:
        self.records_seen += other.seen
        _tally(self, other)


# The counters a chunk and a run share (a run also counts what it saw as records_seen).
_TALLIES = ("posted", "duplicates", "voided", "quarantined", "resolved", "amount_fen_posted")


def _tally(into: ChunkResult | RunSummary, other: ChunkResult) -> None:
    for name in _TALLIES:
        setattr(into, name, getattr(into, name) + getattr(other, name))
    into.reasons.update(other.reasons)


@dataclass
class Run:
    """A run in progress: its summary so far, who listens, and the card shards it clears."""

    summary: RunSummary
    listener: RunListener
    shards: ShardRange = ALL_SHARDS

    @property
    def run_id(self) -> int:
        return self.summary.run_id
