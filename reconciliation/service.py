"""The breaks workflow for finance staff: read runs and breaks, assign, explain, resolve, write
off, each with a history entry saying who did what and when; and confirm a suspected clone onto
the deny list through clearing's own list function (reconciliation itself never changes it).

Takes a connection (or a session where clearing's list service needs one) and never commits.
Moves no money: a correction a break calls for is posted by finance on the clearing side.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.db.base import utc_now
from reconciliation import repository
from reconciliation.checks.base import BreakKind
from reconciliation.errors import (
    BreakClosed,
    BreakNotFound,
    NotASuspectedClone,
    NoteInvalid,
    RunNotFound,
)
from reconciliation.models import BreakStatus, EventAction
from reconciliation.report import DayReport

ACTOR_LENGTH_MAX = 100
NOTE_LENGTH_MAX = 2000


@dataclass(frozen=True, slots=True)
class BreakView:
    row: dict[str, Any]
    history: list[dict[str, Any]]


def age_days(row: dict[str, Any], now: datetime) -> float:
    end = row["closed_at"] or now
    return round(max(0.0, (end - row["first_seen_at"]).total_seconds() / 86400), 2)


def _checked(text: str, what: str, limit: int) -> str:
    text = text.strip()
    if not text or len(text) > limit:
        raise NoteInvalid(f"{what} must be 1 .. {limit} characters")
    return text


async def open_break(conn: AsyncConnection, break_id: int) -> dict[str, Any]:
    """The break, locked; BreakNotFound or BreakClosed if it cannot be worked."""
    row = await repository.get_break(conn, break_id, for_update=True)
    if row is None:
        raise BreakNotFound(f"no break {break_id}: `onecard breaks list` shows them")
    if BreakStatus(row["status"]).closed:
        raise BreakClosed(f"break {break_id} is {row['status']} since {row['closed_at']:%Y-%m-%d}")
    return row


async def show(conn: AsyncConnection, break_id: int) -> BreakView:
    row = await repository.get_break(conn, break_id)
    if row is None:
        raise BreakNotFound(f"no break {break_id}: `onecard breaks list` shows them")
    return BreakView(row, await repository.break_history(conn, break_id))


async def get_run(conn: AsyncConnection, run_id: int) -> tuple[dict[str, Any], list[dict]]:
    run = await repository.get_run(conn, run_id)
    if run is None:
        raise RunNotFound(f"no reconciliation run {run_id}")
    return run, await repository.run_matches(conn, [run_id])


async def list_runs(
    conn: AsyncConnection, business_day: date | None = None, limit: int = 100
) -> list[tuple[dict[str, Any], list[dict]]]:
    found = await repository.list_runs(conn, business_day=business_day, limit=limit)
    checks = await repository.run_matches(conn, [r["id"] for r in found])
    return [(r, [c for c in checks if c["run_id"] == r["id"]]) for r in found]


async def _act(
    conn: AsyncConnection,
    break_id: int,
    *,
    actor: str,
    action: EventAction,
    status: BreakStatus,
    note: str,
    now: datetime | None,
    **values: Any,
) -> BreakView:
    actor = _checked(actor, "the actor", ACTOR_LENGTH_MAX)
    await open_break(conn, break_id)
    now = now or utc_now()
    if status.closed:
        values.update(closed_at=now, closed_by=actor)
    await repository.update_break(conn, break_id, status=status.value, **values)
    await repository.add_event(
        conn, break_id, at=now, actor=actor, action=action, status=status, note=note
    )
    return await show(conn, break_id)


async def assign(
    conn: AsyncConnection,
    break_id: int,
    *,
    assignee: str,
    actor: str,
    note: str = "",
    now: datetime | None = None,
) -> BreakView:
    """Give the break to someone; an explained break stays explained (only its owner changes)."""
    assignee = _checked(assignee, "the assignee", ACTOR_LENGTH_MAX)
    current = await open_break(conn, break_id)
    status = BreakStatus(current["status"])
    if status is BreakStatus.OPEN:
        status = BreakStatus.ASSIGNED
    text = f"to {assignee}" + (f": {note.strip()}" if note.strip() else "")
    return await _act(
        conn,
        break_id,
        actor=actor,
        action=EventAction.ASSIGNED,
        status=status,
        note=text[:NOTE_LENGTH_MAX],
        now=now,
        assignee=assignee,
    )


async def _noted(
    conn: AsyncConnection,
    break_id: int,
    status: BreakStatus,
    what: str,
    actor: str,
    note: str,
    now: datetime | None,
) -> BreakView:
    """Move a break to `status` with a note saying `what` (required); the history entry's action
    is the status reached."""
    note = _checked(note, what, NOTE_LENGTH_MAX)
    action = EventAction(status.value)
    return await _act(conn, break_id, actor=actor, action=action, status=status, note=note, now=now)


async def explain(
    conn: AsyncConnection, break_id: int, *, actor: str, note: str, now: datetime | None = None
) -> BreakView:
    return await _noted(conn, break_id, BreakStatus.EXPLAINED, "the explanation", actor, note, now)


async def resolve(
    conn: AsyncConnection, break_id: int, *, actor: str, note: str, now: datetime | None = None
) -> BreakView:
    return await _noted(conn, break_id, BreakStatus.RESOLVED, "what resolved it", actor, note, now)


async def write_off(
    conn: AsyncConnection, break_id: int, *, actor: str, note: str, now: datetime | None = None
) -> BreakView:
    """Close the break as written off. Money written off needs a second finance officer: only an
    approved request carries this out (clearing/approvals, kind break_write_off); the API and
    the command line ask for one instead."""
    why = "why it is written off"
    return await _noted(conn, break_id, BreakStatus.WRITTEN_OFF, why, actor, note, now)


# Clearing's function that puts a card on the deny list: (card_no, reason) -> list version.
# The caller (an entry point of clearing) passes it: reconciliation imports none of it.
DenyCard = Callable[[str, str], Awaitable[int]]


async def confirm_clone(
    conn: AsyncConnection,
    break_id: int,
    deny: DenyCard,
    *,
    actor: str,
    note: str,
    now: datetime | None = None,
) -> tuple[BreakView, int]:
    """Finance confirms a suspected clone: `deny` (clearing's) puts the card on the deny list, a
    new version terminals fetch as they already do, and the break's history says so. The break
    stays open until finance resolves it."""
    actor = _checked(actor, "the actor", ACTOR_LENGTH_MAX)
    note = _checked(note, "why the card is denied", NOTE_LENGTH_MAX)
    row = await open_break(conn, break_id)
    if row["kind"] != BreakKind.CARD_CLONE_SUSPECTED.value:
        raise NotASuspectedClone(f"break {break_id} is {row['kind']}, not a suspected clone")
    card_no = row["counterpart"]
    version = await deny(card_no, f"suspected clone (reconciliation break {break_id}): {note}")
    await repository.add_event(
        conn,
        break_id,
        at=now or utc_now(),
        actor=actor,
        action=EventAction.CARD_DENIED,
        status=BreakStatus(row["status"]),
        note=f"card {card_no} on the deny list, version {version}: {note}"[:NOTE_LENGTH_MAX],
    )
    return await show(conn, break_id), version


TREND_DAYS = 30


async def day_report(
    conn: AsyncConnection, business_day: date, now: datetime | None = None
) -> DayReport:
    """What the day's report shows: its last run, that run's match rates, the breaks open now or
    found by the day's runs (with their age), and the last runs of the 30 days up to it."""
    now = now or utc_now()
    trend = await repository.latest_runs_per_day(
        conn, business_day - timedelta(days=TREND_DAYS - 1), business_day
    )
    run = trend[-1] if trend and trend[-1]["business_day"] == business_day else None
    checks = await repository.run_matches(conn, [run["id"]]) if run else []
    rows = await repository.breaks_of_day_report(conn, business_day)
    for row in rows:
        row["age_days"] = age_days(row, now)
    return DayReport(business_day, now, run, checks, rows, trend)
