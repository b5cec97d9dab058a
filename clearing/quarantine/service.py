"""The quarantine for finance staff: list, inspect, release (re-clear after a fix) or write off
records the engine could not clear. Every action is audited with who and why.

Takes the caller's connection and never commits it. Releasing only sends a record back to
the engine (state `received`); the engine decides again, with the override if one was given.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.api.errors import Conflict, InvalidRequest, NotFound
from clearing.engine import repository as engine_repo
from clearing.engine.models import QuarantineAction, QuarantineActionRow, TapDisposition
from clearing.engine.reasons import QuarantineReason
from clearing.ingest.models import TapRecord
from clearing.records import TapKind, TapState
from clearing.registry.models import utc_now

taps = cast(Table, TapRecord.__table__)
actions = cast(Table, QuarantineActionRow.__table__)
dispositions = cast(Table, TapDisposition.__table__)

PAGE_MAX = 1000
NOTE_LENGTH_MAX = 2000
ACTOR_LENGTH_MAX = 100


class NotQuarantined(Conflict):
    code = "not_quarantined"
    title = "The record is not in quarantine"


class OverrideNotAllowed(InvalidRequest):
    code = "override_not_allowed"
    title = "This reason cannot be overridden"


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


# Each view's fields are its table's columns (`reason` is the record's quarantine_reason): the
# queries are built from the views, so a field renamed on one side cannot silently drift.
_LISTED = tuple(
    taps.c.quarantine_reason.label("reason") if f.name == "reason" else taps.c[f.name]
    for f in fields(QuarantinedRecord)
)
_ACTION = tuple(actions.c[f.name] for f in fields(ActionEntry))


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
    query = select(*_LISTED).where(taps.c.state == TapState.QUARANTINED, taps.c.id > after_id)
    if reason is not None:
        query = query.where(taps.c.quarantine_reason == reason.value)
    if terminal_id is not None:
        query = query.where(taps.c.terminal_id == terminal_id)
    rows = await conn.execute(query.order_by(taps.c.id).limit(limit))
    return [QuarantinedRecord(*row) for row in rows]


async def counts_by_reason(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(
        select(taps.c.quarantine_reason, func.count())
        .where(taps.c.state == TapState.QUARANTINED)
        .group_by(taps.c.quarantine_reason)
        .order_by(taps.c.quarantine_reason)
    )
    return {r[0]: int(r[1]) for r in rows}


async def show(conn: AsyncConnection, tap_id: int) -> RecordDetail:
    row = (await conn.execute(select(taps).where(taps.c.id == tap_id))).first()
    if row is None:
        raise NotFound(f"no tap record {tap_id}")
    history = await conn.execute(
        select(*_ACTION).where(actions.c.tap_record_id == tap_id).order_by(actions.c.id)
    )
    disposition = (
        await conn.execute(
            select(dispositions.c.disposition).where(dispositions.c.tap_record_id == tap_id)
        )
    ).scalar()
    record = {
        key: (value.value if hasattr(value, "value") else value)
        for key, value in row._mapping.items()
    }
    return RecordDetail(
        record,
        tuple(ActionEntry(*a) for a in history),
        disposition,
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
    # Never while a clearing chunk is deciding: the engine may be re-examining this record.
    await engine_repo.take_clearing_lock(conn)
    query = select(taps.c.id, taps.c.state, taps.c.quarantine_reason).where(taps.c.id == tap_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
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
    now = now or utc_now()
    await conn.execute(
        update(taps)
        .where(taps.c.id == tap_id)
        .values(state=TapState.RECEIVED, quarantine_reason=None, state_changed_at=now)
    )
    await conn.execute(
        insert(actions).values(
            tap_record_id=tap_id,
            action=QuarantineAction.RELEASED.value,
            reason=row.quarantine_reason,
            override=override.value if override else None,
            actor=actor,
            note=note,
            at=now,
        )
    )


async def write_off(
    conn: AsyncConnection, tap_id: int, *, actor: str, note: str, now: datetime | None = None
) -> None:
    """Close a quarantined record for good: it moves no money (the card keeps its balance)."""
    actor, note = _check_note(actor, note)
    row = await _quarantined_for_update(conn, tap_id)
    now = now or utc_now()
    await conn.execute(
        update(taps)
        .where(taps.c.id == tap_id)
        .values(state=TapState.WRITTEN_OFF, state_changed_at=now)
    )
    await conn.execute(
        insert(actions).values(
            tap_record_id=tap_id,
            action=QuarantineAction.WRITTEN_OFF.value,
            reason=row.quarantine_reason,
            override=None,
            actor=actor,
            note=note,
            at=now,
        )
    )
