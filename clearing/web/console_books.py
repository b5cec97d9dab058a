"""The finance console's books: settlement days (settle, ask to close early, download the
files), operator statements, concession and insurer claims, reconciliation breaks (assign,
explain, resolve, ask a second officer for a write-off) and the charts. Finance only, as
clearing/web/console.py; thin.
"""

from __future__ import annotations

from datetime import date, timedelta

from fastapi import APIRouter, Path, Request
from starlette.responses import FileResponse, Response

from clearing.approvals import service as approvals
from clearing.approvals.endpoints import tools_of
from clearing.approvals.models import ApprovalKind, ApprovalState
from clearing.calendar import BUSINESS_DAY_FIRST, BUSINESS_DAY_LAST
from clearing.errors import ClearingError
from clearing.http.deps import SessionDep, SettingsDep, ledger_of
from clearing.overview import service as overview
from clearing.registry import service as registry_service
from clearing.settlement import service as settlement_service
from clearing.web import charts
from clearing.web.console import NOTE, WRITE_OFF_NOTE, Finance, attempt, now_utc, refuse
from clearing.web.forms import Field, Form, bind, blank
from clearing.web.guard import submitted
from clearing.web.i18n import N_
from clearing.web.pages import reader_language, redirect, render
from clearing.web.session import PageNotFound, Visitor
from reconciliation import service as reconciliation

router = APIRouter(prefix="/console")
CHART_DAYS = 14
PARTICIPANTS_MAX = 500
ASSIGNEE = Field("assignee", N_("Give it to (staff username)"), length_max=100)
EXPLAIN_NOTE = Field("explain_note", N_("What explains it"), length_max=2000)
RESOLVE_NOTE = Field("resolve_note", N_("What resolved it"), length_max=2000)
BREAK_FIELDS = {
    "assign": ASSIGNEE,
    "explain": EXPLAIN_NOTE,
    "resolve": RESOLVE_NOTE,
    "write-off": WRITE_OFF_NOTE,  # asks a second officer (clearing/approvals), writes off nothing
}


def _day(text: str | None) -> date | None:
    """A business day from a query or path, or None if it is none."""
    try:
        day = date.fromisoformat(text or "")
    except ValueError:
        return None
    return day if BUSINESS_DAY_FIRST <= day <= BUSINESS_DAY_LAST else None


def _file_names(day: date) -> list[str]:
    stem = f"settlement-{day.isoformat()}"
    return [f"{stem}.csv", f"{stem}.pain001.xml", f"{stem}-claims.csv"]


# -- settlement days ---------------------------------------------------------------------------


async def _settlements_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    visitor: Visitor,
    status: int = 200,
    early: Form | None = None,
    settle: Form | None = None,
) -> Response:
    calendar = settlement_service.calendar_of(settings)
    now = now_utc()
    figures = await overview.glance(await session.connection(), calendar, now)
    asked = await approvals.list_requests(
        session, visitor.principal, kind=ApprovalKind.EARLY_SETTLEMENT, limit=10
    )
    return render(
        request,
        "console/settlements.html",
        status,
        g=figures,
        asked=[r for r in asked if r.state is ApprovalState.PENDING],
        early=early or blank(NOTE),
        settle=settle or blank(),
    )


@router.get("/settlements", name="console_settlements")
async def settlements(
    request: Request, session: SessionDep, settings: SettingsDep, visitor: Visitor = Finance
) -> Response:
    return await _settlements_page(request, session, settings, visitor)


@router.post("/settlements/settle", name="console_settle")
async def settle_closed_day(
    request: Request, session: SessionDep, settings: SettingsDep, visitor: Visitor = Finance
) -> Response:
    """Settle the last closed day (no second person: its cut-off has passed)."""
    form = bind((), submitted(request))
    ledger = ledger_of(request)
    if ledger is None:
        form.refuse(None, N_("The ledger is not available: nothing was settled."))
        return await _settlements_page(request, session, settings, visitor, 503, settle=form)
    calendar = settlement_service.calendar_of(settings)
    day = calendar.last_closed_day(now_utc())
    try:
        settled = await settlement_service.settle_day(
            await session.connection(),
            ledger,
            day,
            calendar=calendar,
            now=now_utc(),
            actor=visitor.principal.actor,
            escrow_account=settings.escrow_account,
        )
    except ClearingError as error:
        await session.rollback()
        refuse(form, None, error)
        return await _settlements_page(request, session, settings, visitor, 409, settle=form)
    await session.commit()  # durable before its files are written
    settlement_service.write_files(
        settled, settlement_service.settlement_dir(settings), settlement_service.debtor_of(settings)
    )
    return redirect(request, "console_settlement", day=day.isoformat())


@router.post("/settlements/early", name="console_settle_early")
async def ask_early_settlement(
    request: Request, session: SessionDep, settings: SettingsDep, visitor: Visitor = Finance
) -> Response:
    form = bind((NOTE,), submitted(request))

    async def ask() -> None:
        today = settlement_service.calendar_of(settings).business_day(now_utc())
        await approvals.ask(
            session,
            visitor.principal,
            tools_of(request, settings),
            ApprovalKind.EARLY_SETTLEMENT,
            today.isoformat(),
            form.text("note"),
        )

    if await attempt(form, "note", ask):
        return redirect(request, "console_approvals")
    return await _settlements_page(request, session, settings, visitor, 422, early=form)


@router.get("/settlements/{day}", name="console_settlement")
async def settlement_day(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    day: str = Path(max_length=10),
    visitor: Visitor = Finance,
) -> Response:
    business_day = _day(day)
    if business_day is None:
        raise PageNotFound()
    settled = await settlement_service.load_settlement(await session.connection(), business_day)
    if settled is None:
        raise PageNotFound()
    folder = settlement_service.settlement_dir(settings)
    files = [name for name in _file_names(business_day) if (folder / name).is_file()]
    return render(request, "console/settlement.html", s=settled, files=files)


@router.get("/settlements/{day}/files/{name}", name="console_settlement_file")
async def settlement_file(
    session: SessionDep,
    settings: SettingsDep,
    day: str = Path(max_length=10),
    name: str = Path(max_length=64),
    visitor: Visitor = Finance,
) -> Response:
    business_day = _day(day)
    # only the day's own three files, by their exact names: no path ever comes from the URL
    if business_day is None or name not in _file_names(business_day):
        raise PageNotFound()
    path = settlement_service.settlement_dir(settings) / name
    if not path.is_file():
        raise PageNotFound()
    media = "application/xml" if name.endswith(".xml") else "text/csv"
    return FileResponse(path, media_type=media, filename=name)


# -- statements and claims ---------------------------------------------------------------------


@router.get("/statements", name="console_statements")
async def statements(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    participant: str = "",
    day: str = "",
    visitor: Visitor = Finance,
) -> Response:
    calendar = settlement_service.calendar_of(settings)
    business_day = _day(day) or calendar.last_closed_day(now_utc())
    known = await registry_service.list_participants(
        session, visitor.principal, limit=PARTICIPANTS_MAX, offset=0
    )
    codes = [p.code for p in known]
    rows = None
    if participant in codes:
        rows = await settlement_service.operator_statement(
            await session.connection(), participant, business_day
        )
    return render(
        request,
        "console/statements.html",
        codes=codes,
        participant=participant if participant in codes else "",
        day=business_day,
        rows=rows,
    )


@router.get("/claims", name="console_claims")
async def claims(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    day: str = "",
    visitor: Visitor = Finance,
) -> Response:
    calendar = settlement_service.calendar_of(settings)
    business_day = _day(day) or calendar.last_closed_day(now_utc())
    conn = await session.connection()
    settled = await settlement_service.load_settlement(conn, business_day)
    concessions = await settlement_service.subsidy_report(conn, business_day, business_day)
    return render(
        request,
        "console/claims.html",
        day=business_day,
        claims=list(settled.claims) if settled else None,
        concessions=concessions,
    )


# -- reconciliation breaks ---------------------------------------------------------------------


@router.get("/breaks", name="console_breaks")
async def breaks(request: Request, session: SessionDep, visitor: Visitor = Finance) -> Response:
    rows = await overview.breaks_to_work(await session.connection())
    now = now_utc()
    return render(
        request,
        "console/breaks.html",
        rows=[(row, reconciliation.age_days(row, now)) for row in rows],
    )


async def _break_page(
    request: Request,
    session: SessionDep,
    visitor: Visitor,
    break_id: int,
    status: int = 200,
    **forms: Form,
) -> Response:
    try:
        view = await reconciliation.show(await session.connection(), break_id)
    except ClearingError:
        raise PageNotFound() from None
    asked = await approvals.list_requests(
        session, visitor.principal, kind=ApprovalKind.BREAK_WRITE_OFF, target=str(break_id)
    )
    return render(
        request,
        "console/break.html",
        status,
        b=view.row,
        history=view.history,
        age=reconciliation.age_days(view.row, now_utc()),
        assign=forms.get("assign") or blank(ASSIGNEE),
        explain=forms.get("explain") or blank(EXPLAIN_NOTE),
        resolve=forms.get("resolve") or blank(RESOLVE_NOTE),
        asked=asked,
        write_off=forms.get("write-off") or blank(WRITE_OFF_NOTE),
    )


@router.get("/breaks/{break_id}", name="console_break")
async def break_page(
    request: Request,
    session: SessionDep,
    break_id: int = Path(ge=1, le=2**62),
    visitor: Visitor = Finance,
) -> Response:
    return await _break_page(request, session, visitor, break_id)


@router.post("/breaks/{break_id}/{action}", name="console_break_act")
async def act_on_break(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    break_id: int = Path(ge=1, le=2**62),
    action: str = Path(max_length=10),
    visitor: Visitor = Finance,
) -> Response:
    spec = BREAK_FIELDS.get(action)
    if spec is None:
        raise PageNotFound()
    form = bind((spec,), submitted(request))

    async def act() -> None:
        conn = await session.connection()
        actor = visitor.principal.actor
        if action == "assign":
            await reconciliation.assign(conn, break_id, assignee=form.text("assignee"), actor=actor)
        elif action == "explain":
            note = form.text("explain_note")
            await reconciliation.explain(conn, break_id, actor=actor, note=note)
        elif action == "write-off":
            await approvals.ask(
                session,
                visitor.principal,
                tools_of(request, settings),
                ApprovalKind.BREAK_WRITE_OFF,
                str(break_id),
                form.text("write_off_note"),
            )
        else:
            note = form.text("resolve_note")
            await reconciliation.resolve(conn, break_id, actor=actor, note=note)

    if await attempt(form, spec.name, act):
        return redirect(request, "console_break", break_id=break_id)
    return await _break_page(request, session, visitor, break_id, 422, **{action: form})


# -- charts ------------------------------------------------------------------------------------


@router.get("/charts", name="console_charts")
async def chart_page(
    request: Request, session: SessionDep, settings: SettingsDep, visitor: Visitor = Finance
) -> Response:
    lang = reader_language(request)
    calendar = settlement_service.calendar_of(settings)
    now = now_utc()
    first, last = overview.series_window(calendar.business_day(now), CHART_DAYS)
    conn = await session.connection()
    points = await overview.by_day_and_line(conn, first, last)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    rides: dict[str, dict[date, int]] = {}
    revenue: dict[str, dict[date, int]] = {}
    for point in points:
        rides.setdefault(point.line, {})[point.business_day] = point.rides
        revenue.setdefault(point.line, {})[point.business_day] = point.revenue_fen
    ageing = await overview.break_ageing(conn, now)

    def short(day: date) -> str:
        return f"{day.month}/{day.day}"

    return render(
        request,
        "console/charts.html",
        points=points,
        ageing=ageing,
        rides_chart=charts.line_chart(
            lang.gettext(N_("Rides per day and line")), days, rides, lang.number, short, "rides"
        ),
        revenue_chart=charts.line_chart(
            lang.gettext(N_("Revenue per day and line")), days, revenue, lang.yuan, short, "rev"
        ),
        ageing_chart=charts.bar_chart(
            lang.gettext(N_("Open breaks by age in days")),
            [charts.Bar(bucket.label, bucket.items) for bucket in ageing],
            lang.number,
            "ageing",
        ),
    )
