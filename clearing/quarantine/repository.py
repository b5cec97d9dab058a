"""Every query of the quarantine, on the caller's connection (never committed here)."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.engine import repository as engine_repo
from clearing.engine.models import QuarantineAction, QuarantineActionRow, TapDisposition
from clearing.ingest.models import OPEN_RECORDS, TapOpen, TapRecord
from clearing.quarantine.views import ActionEntry, QuarantinedRecord
from clearing.records import TapState

taps = cast(Table, TapRecord.__table__)
open_taps = cast(Table, TapOpen.__table__)
actions = cast(Table, QuarantineActionRow.__table__)
dispositions = cast(Table, TapDisposition.__table__)

# Each view's fields are its table's columns (`reason` is the record's quarantine_reason): the
# queries are built from the views, so a field renamed on one side cannot silently drift.
_LISTED = tuple(
    taps.c.quarantine_reason.label("reason") if f.name == "reason" else taps.c[f.name]
    for f in fields(QuarantinedRecord)
)
_ACTION = tuple(actions.c[f.name] for f in fields(ActionEntry))


async def held(
    conn: AsyncConnection, *, reason: str | None, terminal_id: str | None, after_id: int, limit: int
) -> list[QuarantinedRecord]:
    """Quarantined records after `after_id`, in arrival order."""
    query = (
        select(*_LISTED)
        .select_from(OPEN_RECORDS)
        .where(open_taps.c.state == TapState.QUARANTINED, open_taps.c.tap_record_id > after_id)
    )
    if reason is not None:
        query = query.where(taps.c.quarantine_reason == reason)
    if terminal_id is not None:
        query = query.where(taps.c.terminal_id == terminal_id)
    rows = await conn.execute(query.order_by(open_taps.c.tap_record_id).limit(limit))
    return [QuarantinedRecord(*row) for row in rows]


async def counts_by_reason(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(
        select(taps.c.quarantine_reason, func.count())
        .select_from(OPEN_RECORDS)
        .where(open_taps.c.state == TapState.QUARANTINED)
        .group_by(taps.c.quarantine_reason)
        .order_by(taps.c.quarantine_reason)
    )
    return {r[0]: int(r[1]) for r in rows}


async def record(conn: AsyncConnection, tap_id: int) -> dict[str, Any] | None:
    """Every stored column of a record (enum members as their stored values), or None."""
    row = (await conn.execute(select(taps).where(taps.c.id == tap_id))).first()
    if row is None:
        return None
    return {
        key: (value.value if hasattr(value, "value") else value)
        for key, value in row._mapping.items()
    }


async def history(conn: AsyncConnection, tap_id: int) -> tuple[ActionEntry, ...]:
    rows = await conn.execute(
        select(*_ACTION).where(actions.c.tap_record_id == tap_id).order_by(actions.c.id)
    )
    return tuple(ActionEntry(*a) for a in rows)


async def disposition(conn: AsyncConnection, tap_id: int) -> str | None:
    found: str | None = (
        await conn.execute(
            select(dispositions.c.disposition).where(dispositions.c.tap_record_id == tap_id)
        )
    ).scalar()
    return found


async def state_for_update(conn: AsyncConnection, tap_id: int) -> Any:
    """The record's id, state and quarantine reason, locked against clearing and other staff
    (never while a clearing chunk is deciding: the engine may be re-examining it); or None."""
    await engine_repo.take_clearing_lock(conn)
    query = select(taps.c.id, taps.c.state, taps.c.quarantine_reason).where(taps.c.id == tap_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def move(
    conn: AsyncConnection,
    tap_id: int,
    state: TapState,
    at: datetime,
    audit: tuple[QuarantineAction, str | None, str | None, str, str],
) -> None:
    """Move a held record to `state` and audit it: (action, reason, override, actor, note).
    Released records lose their quarantine reason (the engine decides them again)."""
    values: dict[str, Any] = {"state": state, "state_changed_at": at}
    if state is TapState.RECEIVED:
        values["quarantine_reason"] = None
    await conn.execute(update(taps).where(taps.c.id == tap_id).values(**values))
    action, reason, override, actor, note = audit
    await conn.execute(
        insert(actions).values(
            tap_record_id=tap_id,
            action=action.value,
            reason=reason,
            override=override,
            actor=actor,
            note=note,
            at=at,
        )
    )
