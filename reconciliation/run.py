"""The reconciliation run of one business day: execute every check, record its match rate, and
bring the stored breaks in line with what the checks found.

Idempotent: a re-run finds the same (kind, key) breaks again and keeps their status, assignee and
history; a break the checks no longer find is resolved by the run itself (with a history entry),
and one the run had resolved comes back (reopened) if the fault shows again. A break finance
staff closed stays closed. Takes a connection and never commits (the caller owns the
transaction); writes only the recon_* tables and never moves money.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.calendar import BusinessCalendar, parse_cutoff
from clearing.db.base import utc_now
from clearing.errors import Unavailable
from clearing.mobile.errors import StripeUnavailable
from clearing.settings import Settings
from ledger.reader import LedgerReader, posted_through
from reconciliation import repository
from reconciliation.checks import CHECKS
from reconciliation.checks.base import (
    BreakKind,
    Check,
    CheckContext,
    CheckResult,
    Finding,
    Scope,
)
from reconciliation.checks.ledger import ledger_ns
from reconciliation.errors import BillerUnreachable
from reconciliation.models import RUN_ACTOR, BreakStatus, EventAction

# An outside system a check reads (Stripe's API, a biller's service) that did not answer: the
# check cannot say what it holds, so the run completes every other check and records this one as
# not checked for the day (a `source_not_reached` break), closing none of its breaks.
SOURCE_UNREACHABLE: tuple[type[Unavailable], ...] = (StripeUnavailable, BillerUnreachable)


@dataclass(frozen=True, slots=True)
class CheckSummary:
    name: str
    matched: int
    total: int
    breaks: int
    seconds: float
    not_reached: str = ""  # the outside system that did not answer: the check did not run

    @property
    def match_rate(self) -> float:
        return 1.0 if self.total == 0 else self.matched / self.total


@dataclass(slots=True)
class RunSummary:
    run_id: int
    business_day: date
    checks: list[CheckSummary] = field(default_factory=list)
    found: int = 0  # breaks the checks found in this run
    new: int = 0  # of which seen for the first time (or back after the run closed them)
    closed: int = 0  # open breaks the run resolved because the data no longer shows them
    open: int = 0  # breaks open after the run (every day)
    ledger_window: tuple[int, int] | None = None  # the ledger time the ledger check read
    accounts_swept: bool = False  # every account checked against its last entry


def sweeps(settings: Settings, business_day: date) -> bool:
    """Whether the night of `business_day` checks every ledger account (recon_sweep_weekday)."""
    return business_day.weekday() == settings.recon_sweep_weekday


def calendar_of(settings: Settings) -> BusinessCalendar:
    """The business calendar settlement closes days by (zone and cut-off from the settings)."""
    return BusinessCalendar(
        ZoneInfo(settings.business_time_zone), parse_cutoff(settings.settlement_cutoff)
    )


async def run_day(
    conn: AsyncConnection,
    business_day: date,
    *,
    calendar: BusinessCalendar | None = None,
    checks: Sequence[Check] = CHECKS,
    trigger: str = "cli",
    now: datetime | None = None,
    sweep_accounts: bool = False,
) -> RunSummary:
    """Run every check for `business_day` on `conn` and store runs, match counts and breaks.
    `sweep_accounts`: the ledger check also checks every account against its last entry (the
    weekly sweep), not only the accounts its window touched."""
    now = now or utc_now()
    await repository.lock_runs(conn)
    await repository.apply_run_settings(conn)
    calendar = calendar or BusinessCalendar()
    window = await repository.ledger_window(
        conn, business_day, await posted_through(conn), ledger_ns(calendar.day_start(business_day))
    )
    run_id = await repository.start_run(
        conn, business_day, trigger, now, window, accounts_swept=sweep_accounts
    )
    summary = RunSummary(run_id, business_day, ledger_window=window, accounts_swept=sweep_accounts)
    ctx = CheckContext(
        conn=conn,
        reader=LedgerReader(conn.engine),
        business_day=business_day,
        calendar=calendar,
        now=now,
        ledger_window=window,
        sweep_accounts=sweep_accounts,
    )
    for check in checks:
        started = time.perf_counter()
        unreached: Finding | None = None
        try:
            result = await check.run(ctx)
        except SOURCE_UNREACHABLE as error:
            unreached = not_reached(check.name, business_day, error)
            result = CheckResult(findings=[unreached])
        seconds = time.perf_counter() - started
        await repository.add_match(
            conn,
            run_id,
            check.name,
            matched=result.matched,
            total=result.total,
            breaks_found=len(result.findings) + result.truncated,
            seconds=seconds,
        )
        summary.checks.append(
            CheckSummary(
                check.name,
                result.matched,
                result.total,
                len(result.findings) + result.truncated,
                seconds,
                unreached.counterpart if unreached else "",
            )
        )
        await _store_findings(conn, check, result, summary, now, checked=unreached is None)
    await repository.finish_run(
        conn,
        run_id,
        utc_now(),
        breaks_found=summary.found,
        breaks_new=summary.new,
        breaks_closed=summary.closed,
        breaks_open=await repository.count_open(conn),
    )
    summary.open = await repository.count_open(conn)
    return summary


def not_reached(check_name: str, business_day: date, error: Unavailable) -> Finding:
    """The finding that says a check could not read its outside source for the day: one per
    check and day (a re-run that still cannot reach it finds the same one; one that can closes
    it)."""
    source = "stripe" if isinstance(error, StripeUnavailable) else "billers"
    return Finding(
        BreakKind.SOURCE_NOT_REACHED,
        f"{check_name}:{business_day.isoformat()}",
        0,
        source,
        {
            "check": check_name,
            "source": source,
            "why": f"{source}: not reached, check {check_name!r} not done: {error.detail}",
            "todo": f"onecard reconcile --date {business_day.isoformat()} once {source} answers",
        },
        Scope.DAY,
    )


async def _store_findings(
    conn: AsyncConnection,
    check: Check,
    result: CheckResult,
    summary: RunSummary,
    now: datetime,
    *,
    checked: bool = True,
) -> None:
    by_kind: dict[str, list[Finding]] = {}
    for finding in result.findings:
        by_kind.setdefault(finding.kind.value, []).append(finding)
    for kind, findings in by_kind.items():
        stored = await repository.breaks_by_key(conn, kind, [f.key for f in findings])
        for finding in findings:
            await _store_one(conn, check.name, finding, stored.get(finding.key), summary, now)
    summary.found += len(result.findings)
    if not checked or result.truncated:
        return  # not checked, or findings left out: absence proves nothing, close nothing
    unseen = await repository.unseen_open_breaks(
        conn, [k.value for k in check.kinds], summary.business_day, summary.run_id
    )
    # the check read its source this time: the day's "not reached" of it is answered
    earlier = await repository.breaks_by_key(
        conn,
        BreakKind.SOURCE_NOT_REACHED.value,
        [f"{check.name}:{summary.business_day.isoformat()}"],
    )
    unseen += [
        int(row["id"])
        for row in earlier.values()
        if not BreakStatus(row["status"]).closed and row["last_run_id"] != summary.run_id
    ]
    for break_id in unseen:
        await repository.update_break(
            conn,
            break_id,
            status=BreakStatus.RESOLVED.value,
            closed_at=now,
            closed_by=RUN_ACTOR,
        )
        await repository.add_event(
            conn,
            break_id,
            at=now,
            actor=RUN_ACTOR,
            action=EventAction.RESOLVED,
            status=BreakStatus.RESOLVED,
            note=f"run {summary.run_id} of {summary.business_day} no longer finds it",
            run_id=summary.run_id,
        )
    summary.closed += len(unseen)


async def _store_one(
    conn: AsyncConnection,
    check_name: str,
    finding: Finding,
    existing: dict | None,
    summary: RunSummary,
    now: datetime,
) -> None:
    seen = {
        "amount_fen": finding.amount_fen,
        "counterpart": finding.counterpart,
        "details": finding.details,
        "last_seen_at": now,
        "last_run_id": summary.run_id,
    }
    if existing is None:
        break_id = await repository.insert_break(
            conn,
            {
                **seen,
                "kind": finding.kind.value,
                "key": finding.key,
                "scope": finding.scope.value,
                "business_day": summary.business_day,
                "check_name": check_name,
                "status": BreakStatus.OPEN.value,
                "first_seen_at": finding.first_seen_at or now,
            },
        )
        summary.new += 1
        await _event(conn, break_id, EventAction.FOUND, BreakStatus.OPEN, summary, now)
        return
    break_id = int(existing["id"])
    if finding.scope is Scope.DAY and existing["business_day"] < summary.business_day:
        seen["business_day"] = summary.business_day  # the last day whose run showed it
    status = BreakStatus(existing["status"])
    if status.closed and existing["closed_by"] == RUN_ACTOR:
        status = BreakStatus.ASSIGNED if existing["assignee"] else BreakStatus.OPEN
        await repository.update_break(
            conn, break_id, **seen, status=status.value, closed_at=None, closed_by=None
        )
        summary.new += 1
        await _event(conn, break_id, EventAction.REOPENED, status, summary, now)
        return
    await repository.update_break(conn, break_id, **seen)
    if existing["amount_fen"] != finding.amount_fen and not status.closed:
        note = f"amount {existing['amount_fen']} -> {finding.amount_fen} fen"
        await _event(conn, break_id, EventAction.CHANGED, status, summary, now, note)


async def _event(
    conn: AsyncConnection,
    break_id: int,
    action: EventAction,
    status: BreakStatus,
    summary: RunSummary,
    now: datetime,
    note: str = "",
) -> None:
    await repository.add_event(
        conn,
        break_id,
        at=now,
        actor=RUN_ACTOR,
        action=action,
        status=status,
        note=note or f"run {summary.run_id} of {summary.business_day}",
        run_id=summary.run_id,
    )
