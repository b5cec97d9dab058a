"""Reconciliation endpoints for finance staff: runs with their match rates, breaks with their
history, the breaks workflow (assign, explain, resolve; confirm a suspected clone onto the deny
list; a write-off is asked of a second officer at /v1/approvals), and each day's report (HTML
and CSV).

Thin: parse, check the role (finance staff act; finance and admins read), call the service. Errors are RFC 9457 problems.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, Field

from clearing.auth.dependencies import PrincipalDep
from clearing.auth.models import Role
from clearing.auth.service import Principal, require_role
from clearing.calendar import BUSINESS_DAY_FIRST, BUSINESS_DAY_LAST
from clearing.db.base import utc_now
from clearing.errors import InvalidRequest, SecondPersonRequired
from clearing.http.bodies import RequestModel, StrictJsonRoute
from clearing.http.deps import SessionDep
from clearing.http.problems import PROBLEM_RESPONSES
from reconciliation import report, repository, service
from reconciliation.checks.base import BreakKind
from reconciliation.models import BreakStatus

router = APIRouter(
    route_class=StrictJsonRoute,
    prefix="/v1/reconciliation",
    tags=["reconciliation"],
    responses=PROBLEM_RESPONSES,
)
BreakId = Annotated[int, Path(ge=1, le=2**62, description="A break's id")]
RunId = Annotated[int, Path(ge=1, le=2**62, description="A run's id")]
# Only real dates of DAY_FIRST..DAY_LAST, as a pattern the schema states (the same rule as the
# settlement endpoints' days; a number such as 0 is not a day).
_YEAR = r"(?:20[0-9]{2}|2100)"
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_LEAP_DAY = r"20(?:[02468][048]|[13579][26])-02-29"
DAY_PATTERN = rf"^(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_DAY})$"
DAY_DESCRIPTION = f"A business day, {BUSINESS_DAY_FIRST} to {BUSINESS_DAY_LAST}"
DayPath = Annotated[str, Path(pattern=DAY_PATTERN, description=DAY_DESCRIPTION)]
DayQuery = Annotated[str | None, Query(pattern=DAY_PATTERN, description=DAY_DESCRIPTION)]
NOTE = Field(min_length=1, max_length=service.NOTE_LENGTH_MAX)


class CheckOut(BaseModel):
    check: str
    matched: int
    total: int
    match_rate: float
    breaks: int
    seconds: float


class RunOut(BaseModel):
    id: int
    business_day: date
    trigger: str
    state: str
    started_at: datetime
    finished_at: datetime | None
    breaks_found: int
    breaks_new: int
    breaks_closed: int
    breaks_open: int
    ledger_since_ns: int | None = Field(
        description="The ledger check read the entries posted from this ledger time (ns since "
        "the epoch, inclusive); successive days' windows chain. Null on runs before it was kept."
    )
    ledger_until_ns: int | None = Field(
        description="... up to this ledger time (exclusive): what the ledger had committed when "
        "the run began, or where the next reconciled day's window starts."
    )
    ledger_accounts_swept: bool = Field(
        description="The ledger check also checked every account's balances against its last "
        "entry (the weekly sweep), not only the accounts its window's entries touched."
    )
    checks: list[CheckOut]


class EventOut(BaseModel):
    at: datetime
    actor: str
    action: str
    status: str
    note: str
    run_id: int | None


class BreakOut(BaseModel):
    id: int
    kind: str
    key: str
    status: str
    amount_fen: int
    counterpart: str
    assignee: str | None
    business_day: date
    check_name: str
    first_seen_at: datetime
    last_seen_at: datetime
    closed_at: datetime | None
    age_days: float
    details: dict[str, Any]


class BreakDetailOut(BreakOut):
    history: list[EventOut]


class DeniedOut(BreakDetailOut):
    deny_list_version: int


class AssignIn(RequestModel):
    assignee: str = Field(min_length=1, max_length=service.ACTOR_LENGTH_MAX)
    note: str = Field(default="", max_length=service.NOTE_LENGTH_MAX)


class NoteIn(RequestModel):
    note: str = NOTE


class Export(StrEnum):
    BREAKS = "breaks"
    MATCHES = "matches"
    TREND = "trend"


def _day(text: str | None) -> date | None:
    """A day the pattern admitted (so a real date of DAY_FIRST..DAY_LAST), as a date."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{text!r} is not a business day (YYYY-MM-DD)") from None


def _finance(principal: Principal) -> None:
    """The workflow's actions: finance staff only."""
    require_role(principal, Role.FINANCE)


def _reader(principal: Principal) -> None:
    """Reading runs, breaks and reports: finance staff, and admins (as the quarantine)."""
    require_role(principal, Role.FINANCE, Role.ADMIN)


def _run_out(run: dict[str, Any], checks: list[dict[str, Any]]) -> RunOut:
    return RunOut(
        **{k: run[k] for k in RunOut.model_fields if k != "checks"},
        checks=[
            CheckOut(
                check=c["check_name"],
                matched=c["matched"],
                total=c["total"],
                match_rate=1.0 if not c["total"] else c["matched"] / c["total"],
                breaks=c["breaks"],
                seconds=c["seconds"],
            )
            for c in checks
        ],
    )


def _break_out(row: dict[str, Any]) -> BreakOut:
    fields = {k: row[k] for k in BreakOut.model_fields if k != "age_days"}
    return BreakOut(**fields, age_days=service.age_days(row, utc_now()))


def detail_out(view: service.BreakView) -> BreakDetailOut:
    history = [EventOut(**{k: e[k] for k in EventOut.model_fields}) for e in view.history]
    return BreakDetailOut(**_break_out(view.row).model_dump(), history=history)


@router.get("/runs", response_model=list[RunOut], summary="Reconciliation runs (finance)")
async def list_runs(
    session: SessionDep,
    principal: PrincipalDep,
    business_day: DayQuery = None,
    limit: Annotated[int, Query(ge=1, le=repository.PAGE_MAX)] = 100,
) -> list[RunOut]:
    """The runs, newest first, each with every check's auto-match rate."""
    _reader(principal)
    found = await service.list_runs(await session.connection(), _day(business_day), limit)
    return [_run_out(run, checks) for run, checks in found]


@router.get("/runs/{run_id}", response_model=RunOut, summary="One reconciliation run (finance)")
async def get_run(run_id: RunId, session: SessionDep, principal: PrincipalDep) -> RunOut:
    """One run: its day, when it ran, the breaks it found, new and closed, and every check's
    auto-match rate (matched / total)."""
    _reader(principal)
    run, checks = await service.get_run(await session.connection(), run_id)
    return _run_out(run, checks)


@router.get("/breaks", response_model=list[BreakOut], summary="Breaks (finance)")
async def list_breaks(
    session: SessionDep,
    principal: PrincipalDep,
    status: Annotated[list[BreakStatus] | None, Query()] = None,
    kind: Annotated[list[BreakKind] | None, Query()] = None,
    business_day: DayQuery = None,
    assignee: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=repository.PAGE_MAX)] = 100,
) -> list[BreakOut]:
    """Breaks by id (page with `after_id`), optionally of some statuses, kinds, day, assignee."""
    _reader(principal)
    rows = await repository.list_breaks(
        await session.connection(),
        statuses=[s.value for s in status or ()],
        kinds=[k.value for k in kind or ()],
        business_day=_day(business_day),
        assignee=assignee,
        after_id=after_id,
        limit=limit,
    )
    return [_break_out(r) for r in rows]


@router.get("/breaks/{break_id}", response_model=BreakDetailOut, summary="A break (finance)")
async def get_break(
    break_id: BreakId, session: SessionDep, principal: PrincipalDep
) -> BreakDetailOut:
    """A break with its whole history: who did what, when and why."""
    _reader(principal)
    return detail_out(await service.show(await session.connection(), break_id))


@router.post(
    "/breaks/{break_id}/assign", response_model=BreakDetailOut, summary="Assign a break (finance)"
)
async def assign(
    break_id: BreakId, body: AssignIn, session: SessionDep, principal: PrincipalDep
) -> BreakDetailOut:
    """Give the break to someone (409 if it is closed)."""
    _finance(principal)
    view = await service.assign(
        await session.connection(),
        break_id,
        assignee=body.assignee,
        actor=principal.actor,
        note=body.note,
    )
    return detail_out(view)


@router.post(
    "/breaks/{break_id}/explain", response_model=BreakDetailOut, summary="Explain a break (finance)"
)
async def explain(
    break_id: BreakId, body: NoteIn, session: SessionDep, principal: PrincipalDep
) -> BreakDetailOut:
    """Say what caused the break (409 if it is closed)."""
    _finance(principal)
    conn = await session.connection()
    return detail_out(await service.explain(conn, break_id, actor=principal.actor, note=body.note))


@router.post(
    "/breaks/{break_id}/resolve", response_model=BreakDetailOut, summary="Resolve a break (finance)"
)
async def resolve(
    break_id: BreakId, body: NoteIn, session: SessionDep, principal: PrincipalDep
) -> BreakDetailOut:
    """Close the break as resolved, saying how (409 if it is closed)."""
    _finance(principal)
    conn = await session.connection()
    return detail_out(await service.resolve(conn, break_id, actor=principal.actor, note=body.note))


@router.post(
    "/breaks/{break_id}/write-off",
    response_model=BreakDetailOut,
    summary="Write a break off: ask a second officer (finance)",
    description="Money written off needs a second finance officer: this answers 409 "
    'second_person_required; ask with POST /v1/approvals {"kind": "break_write_off", '
    '"target": "<break id>", "reason": ...} and another officer approves it.',
)
async def write_off(
    break_id: BreakId, body: NoteIn, session: SessionDep, principal: PrincipalDep
) -> BreakDetailOut:
    _finance(principal)
    raise SecondPersonRequired(
        f"writing a break off needs a second finance officer: ask with POST /v1/approvals "
        f'{{"kind": "break_write_off", "target": "{break_id}", "reason": ...}}'
    )


@router.get(
    "/reports/{business_day}/report.html",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
    summary="A day's report (finance)",
)
async def get_report(business_day: DayPath, session: SessionDep, principal: PrincipalDep) -> Any:
    """The day's self-contained HTML report (inline SVG charts; nothing loaded from outside)."""
    _reader(principal)
    made = await service.day_report(await session.connection(), _day(business_day))
    return HTMLResponse(report.render_html(made))


@router.get(
    "/reports/{business_day}/{export}.csv",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    summary="A day's CSV export (finance)",
)
async def get_export(
    business_day: DayPath,
    export: Annotated[Export, Path(description="breaks, matches or trend")],
    session: SessionDep,
    principal: PrincipalDep,
) -> Any:
    """One CSV export of the day: its breaks, its checks' match rates, or the last 30 days."""
    _reader(principal)
    made = await service.day_report(await session.connection(), _day(business_day))
    return PlainTextResponse(report.CSV_FILES[export.value](made), media_type="text/csv")
