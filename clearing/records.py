"""One tap record's vocabulary, shared by ingestion, the engine and the quarantine.

Pure. Each value is what `tap_records` stores (the enums are StrEnums: a member equals its
stored string), so the database never changes when code says `TapKind.LOAD` instead of "load".
"""

from __future__ import annotations

import enum


class TapKind(enum.StrEnum):
    """What a record moves: a fare or a utility payment, a pending load, a clinic co-payment."""

    PURCHASE = "purchase"
    LOAD = "load"
    CLINIC = "clinic"


class RecordStatus(enum.StrEnum):
    """How the card answered the terminal's debit."""

    COMPLETE = "complete"
    GREY = "grey"  # the debit was sent but its answer never came back


class TapState(enum.StrEnum):
    """Where a staged record is in clearing (only the engine and finance staff change it)."""

    RECEIVED = "received"
    CLEARED = "cleared"
    QUARANTINED = "quarantined"
    WRITTEN_OFF = "written_off"
