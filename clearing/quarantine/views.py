"""What finance staff see of a held record: one type per view, returned by the service and by
the API as they are (no copies of their fields elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clearing.records import TapKind, TapState


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    """A held record as finance staff list it (and the API returns it): the tap's own fields
    under their column names, then why it is held and its state."""

    id: int
    terminal_id: str
    kind: TapKind
    card_no: str
    card_counter: int
    terminal_seq: int
    amount_fen: int
    occurred_at: datetime
    reason: str | None
    state: TapState


@dataclass(frozen=True, slots=True)
class ActionEntry:
    """One audited action on a record (a `quarantine_actions` row but its record's id)."""

    id: int
    action: str
    reason: str | None
    override: str | None
    actor: str
    note: str
    at: datetime


@dataclass(frozen=True, slots=True)
class RecordDetail:
    """A record as stored (every column), its audit trail and its disposition."""

    record: dict[str, Any]
    actions: tuple[ActionEntry, ...]
    disposition: str | None
