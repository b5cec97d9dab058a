"""The quarantine for finance staff: list, inspect, release (re-clear after a fix) or write off
records the engine could not clear. Every action is audited with who and why.

Takes the caller's connection and never commits it. Releasing only sends a record back to
the engine (state `received`); the engine decides again, with the override if one was given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.db.base import utc_now
from clearing.engine.models import QuarantineAction
from clearing.engine.reasons import QuarantineReason
from clearing.errors import Conflict, InvalidRequest, NotFound
from clearing.quarantine import repository
from clearing.quarantine.views import ActionEntry, QuarantinedRecord, RecordDetail
from clearing.records import TapState

__all__ = [
    "ActionEntry",
    "NotQuarantined",
    "OverrideNotAllowed",
    "QuarantinedRecord",
    "RecordDetail",
    "counts_by_reason",
    "list_quarantined",
    "release",
    "show",
    "write_off",
]

PAGE_MAX = 1000
NOTE_LENGTH_MAX = 2000
ACTOR_LENGTH_MAX = 100


class NotQuarantined(Conflict):
    code = "not_quarantined"
    title = "The record is not in quarantine"


class OverrideNotAllowed(InvalidRequest):
    code = "override_not_allowed"
    title = "This reason cannot be overridden"


async def list_quarantined(
    conn: AsyncConnection,
    *,
    reason: QuarantineReason | None = None,
    terminal_id: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[QuarantinedRecord]:
    """Quarantined records in arrival order, a page at a time (`after_id` = last id seen)."""
    if not 1 <= limit <= PAGE_MAX:
        raise InvalidRequest(f"limit must be 1 .. {PAGE_MAX}")
    return await repository.held(
        conn,
        reason=reason.value if reason is not None else None,
        terminal_id=terminal_id,
        after_id=after_id,
        limit=limit,
    )


async def counts_by_reason(conn: AsyncConnection) -> dict[str, int]:
    return await repository.counts_by_reason(conn)


async def show(conn: AsyncConnection, tap_id: int) -> RecordDetail:
    record = await repository.record(conn, tap_id)
    if record is None:
        raise NotFound(f"no tap record {tap_id}")
    return RecordDetail(
        record,
        await repository.history(conn, tap_id),
        await repository.disposition(conn, tap_id),
    )


def _check_note(actor: str, note: str) -> tuple[str, str]:
    actor = actor.strip()
    note = note.strip()
    if not actor or len(actor) > ACTOR_LENGTH_MAX:
        raise InvalidRequest(f"the actor must be 1 .. {ACTOR_LENGTH_MAX} characters")
    if not note or len(note) > NOTE_LENGTH_MAX:
        raise InvalidRequest(f"say why, in 1 .. {NOTE_LENGTH_MAX} characters")
    return actor, note


async def _quarantined_for_update(conn: AsyncConnection, tap_id: int) -> Any:
    row = await repository.state_for_update(conn, tap_id)
    if row is None:
        raise NotFound(f"no tap record {tap_id}")
    if row.state != TapState.QUARANTINED:
        raise NotQuarantined(f"tap record {tap_id} is {row.state}, not quarantined")
    return row


async def release(
    conn: AsyncConnection,
    tap_id: int,
    *,
    actor: str,
    note: str,
    override: QuarantineReason | None = None,
    now: datetime | None = None,
) -> None:
    """Send a quarantined record back to clearing (after the cause was fixed, e.g. the card or
    terminal registered). `override` accepts a soft reason (balance chain, torn tap) for it."""
    actor, note = _check_note(actor, note)
    row = await _quarantined_for_update(conn, tap_id)
    if override is not None:
        if not override.overridable:
            raise OverrideNotAllowed(f"{override.value} is checked again on every release")
        if row.quarantine_reason != override.value:
            raise OverrideNotAllowed(
                f"the record is quarantined for {row.quarantine_reason}, not {override.value}"
            )
    audit = (
        QuarantineAction.RELEASED,
        row.quarantine_reason,
        override.value if override else None,
        actor,
        note,
    )
    await repository.move(conn, tap_id, TapState.RECEIVED, now or utc_now(), audit)


async def write_off(
    conn: AsyncConnection, tap_id: int, *, actor: str, note: str, now: datetime | None = None
) -> None:
    """Close a quarantined record for good: it moves no money (the card keeps its balance)."""
    actor, note = _check_note(actor, note)
    row = await _quarantined_for_update(conn, tap_id)
    audit = (QuarantineAction.WRITTEN_OFF, row.quarantine_reason, None, actor, note)
    await repository.move(conn, tap_id, TapState.WRITTEN_OFF, now or utc_now(), audit)
