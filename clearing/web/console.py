"""The finance console: staff sign-in, today at a glance, the quarantine queue (release, ask for
a write-off, the audit trail) and the approvals queue (approve, reject).

Finance only: anyone not signed in as staff gets the staff sign-in page; staff without the
finance role, and residents, get the 404 page. Thin, as the API's endpoints are: read the form,
call the services (clearing/staff, clearing/quarantine, clearing/approvals, clearing/overview),
show the answer; a refusal lands next to the field it concerns, in the reader's language.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from clearing.approvals import service as approvals
from clearing.approvals.endpoints import tools_of
from clearing.approvals.models import ApprovalKind, ApprovalState
from clearing.auth.models import Role
from clearing.engine.reasons import QuarantineReason
from clearing.errors import ClearingError
from clearing.http.deps import SessionDep, SettingsDep
from clearing.overview import service as overview
from clearing.quarantine import service as quarantine
from clearing.settlement import service as settlement_service
from clearing.staff import service as staff
from clearing.staff.errors import StaffLocked, StaffSignInFailed
from clearing.web.forms import Field, Form, InputKind, bind, blank, signed_in
from clearing.web.guard import new_csrf_token, submitted
from clearing.web.i18n import N_
from clearing.web.pages import href, redirect, redirect_to, render, safe_next
from clearing.web.session import (
    MaybeVisitor,
    PageNotFound,
    Visitor,
    VisitorKind,
    clear_tokens,
    staff_with,
    start_staff_session,
)

router = APIRouter(prefix="/console")
Finance = staff_with(Role.FINANCE)
TAP_ID_MAX = 2**62
PAGE_ROWS = 100

SIGNIN_FIELDS = (
    Field("username", N_("Staff username"), length_max=64, autocomplete="username"),
    Field(
        "password",
        N_("Password"),
        InputKind.PASSWORD,
        length_max=staff.PASSWORD_LENGTH_MAX,
        autocomplete="current-password",
    ),
    Field("next", "", InputKind.HIDDEN, required=False, length_max=500),
)
NOTE = Field("note", N_("Why (kept in the audit trail)"), length_max=2000)
# One page may hold several forms: each field has a name of its own (it is the input's id).
RELEASE_NOTE = Field("release_note", NOTE.label, length_max=2000)
WRITE_OFF_NOTE = Field("write_off_note", NOTE.label, length_max=2000)
OPTIONAL_NOTE = Field("note", N_("Note (optional)"), required=False, length_max=2000)
REJECT_NOTE = Field("note", N_("Why it is rejected"), length_max=2000)

# What a service's refusal means for the reader (by the error's stable code).
REFUSALS = {
    "requester_cannot_decide": N_("You asked for this: another finance officer decides it."),
    "approval_already_decided": N_("This request was already decided by someone else."),
    "approval_already_requested": N_("The same thing already waits for approval."),
    "approval_not_needed": N_("This needs no approval: do it directly."),
    "not_a_named_staff_member": N_("Only a named finance officer can do this."),
    "not_quarantined": N_("The record is no longer in quarantine."),
    "override_not_allowed": N_("This reason cannot be overridden."),
    "business_day_in_future": N_("That business day has not begun."),
    "business_day_not_closed": N_("That business day has not closed yet."),
    "settled_out_of_order": N_("A later day is already settled."),
    "card_has_uncleared_taps": N_("The card still has taps waiting to be cleared."),
    "refund_after_delivery": N_("The money is on the card already: refund the card instead."),
    "break_closed": N_("The break is closed already."),
}


def refuse(form: Form, name: str | None, error: ClearingError) -> None:
    """A service's refusal on the form, in the reader's language."""
    msgid = REFUSALS.get(error.code)
    if msgid is None:
        form.refuse(name, N_("This was refused (%(code)s)."), code=error.code)
    else:
        form.refuse(name, msgid)


async def attempt(form: Form, name: str | None, action: Callable[[], Awaitable[object]]) -> bool:
    """What every form of the console does: if the form is valid, `action` (a service call);
    its refusal lands on the field `name` (see `refuse`). True if it was done: the handler then
    redirects, else it shows the page again (422) with the form."""
    if not form.valid:
        return False
    try:
        await action()
    except ClearingError as error:
        refuse(form, name, error)
        return False
    return True


def now_utc() -> datetime:
    return datetime.now(UTC)


# -- sign-in -----------------------------------------------------------------------------------


@router.get("/signin", name="staff_signin")
async def signin_page(request: Request, visitor: MaybeVisitor, next: str | None = None) -> Response:
    form = blank(*SIGNIN_FIELDS, next=safe_next(next) or "")
    return render(request, "console/signin.html", form=form)


@router.post("/signin")
async def signin_submit(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    form = bind(SIGNIN_FIELDS, submitted(request))
    signed = await signed_in(
        form,
        lambda username, password: staff.sign_in(session, settings, username, password),
        login="username",
        wrong=N_("The username or the password is wrong."),
        failed=StaffSignInFailed,
        locked=StaffLocked,
    )
    if signed is None:
        return render(request, "console/signin.html", 422, form=form)
    start_staff_session(request, signed.token)
    new_csrf_token(request)
    return redirect_to(safe_next(form.values.get("next")) or href(request, "console"))


@router.post("/signout", name="console_signout")
async def signout(request: Request, session: SessionDep, visitor: MaybeVisitor) -> Response:
    if visitor is not None and visitor.kind is VisitorKind.STAFF:
        await staff.sign_out(session, visitor.principal)
    clear_tokens(request)
    new_csrf_token(request)
    return redirect(request, "staff_signin")


# -- today at a glance -------------------------------------------------------------------------


@router.get("", name="console")
async def glance(
    request: Request, session: SessionDep, settings: SettingsDep, visitor: Visitor = Finance
) -> Response:
    calendar = settlement_service.calendar_of(settings)
    figures = await overview.glance(await session.connection(), calendar, now_utc())
    pending = await approvals.list_requests(
        session, visitor.principal, state=ApprovalState.PENDING, limit=approvals.PAGE_MAX
    )
    return render(request, "console/glance.html", g=figures, pending=len(pending))


# -- the quarantine ----------------------------------------------------------------------------


@router.get("/quarantine", name="console_quarantine")
async def quarantine_queue(
    request: Request, session: SessionDep, after: int = 0, visitor: Visitor = Finance
) -> Response:
    conn = await session.connection()
    rows = await quarantine.list_quarantined(
        conn, after_id=max(0, min(after, TAP_ID_MAX)), limit=PAGE_ROWS
    )
    counts = await quarantine.counts_by_reason(conn)
    return render(request, "console/quarantine.html", rows=rows, counts=counts)


async def _record_page(
    request: Request,
    session: SessionDep,
    visitor: Visitor,
    tap_id: int,
    status: int = 200,
    **forms: Form,
) -> Response:
    conn = await session.connection()
    try:
        detail = await quarantine.show(conn, tap_id)
    except ClearingError:
        raise PageNotFound() from None
    asked = await approvals.list_requests(
        session, visitor.principal, kind=ApprovalKind.WRITE_OFF, target=str(tap_id)
    )
    reason = detail.record.get("quarantine_reason")
    overridable = bool(reason) and reason in {r.value for r in QuarantineReason if r.overridable}
    return render(
        request,
        "console/record.html",
        status,
        tap_id=tap_id,
        detail=detail,
        asked=asked,
        overridable=overridable,
        release=forms.get("release") or blank(RELEASE_NOTE),
        write_off=forms.get("write_off") or blank(WRITE_OFF_NOTE),
    )


@router.get("/quarantine/{tap_id}", name="console_record")
async def record_page(
    request: Request,
    session: SessionDep,
    tap_id: int = Path(ge=1, le=TAP_ID_MAX),
    visitor: Visitor = Finance,
) -> Response:
    return await _record_page(request, session, visitor, tap_id)


@router.post("/quarantine/{tap_id}/release", name="console_release")
async def release(
    request: Request,
    session: SessionDep,
    tap_id: int = Path(ge=1, le=TAP_ID_MAX),
    visitor: Visitor = Finance,
) -> Response:
    data = submitted(request)
    form = bind((RELEASE_NOTE,), data)
    override = None
    if data.get("override") == "yes":
        detail = await quarantine.show(await session.connection(), tap_id)
        reason = detail.record.get("quarantine_reason")
        override = QuarantineReason(reason) if reason else None

    async def do() -> None:
        await quarantine.release(
            await session.connection(),
            tap_id,
            actor=visitor.principal.actor,
            note=form.text("release_note"),
            override=override,
        )

    if await attempt(form, "release_note", do):
        return redirect(request, "console_record", tap_id=tap_id)
    return await _record_page(request, session, visitor, tap_id, 422, release=form)


@router.post("/quarantine/{tap_id}/write-off", name="console_write_off")
async def ask_write_off(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    tap_id: int = Path(ge=1, le=TAP_ID_MAX),
    visitor: Visitor = Finance,
) -> Response:
    form = bind((WRITE_OFF_NOTE,), submitted(request))

    async def ask() -> None:
        await approvals.ask(
            session,
            visitor.principal,
            tools_of(request, settings),
            ApprovalKind.WRITE_OFF,
            str(tap_id),
            form.text("write_off_note"),
        )

    if await attempt(form, "write_off_note", ask):
        return redirect(request, "console_record", tap_id=tap_id)
    return await _record_page(request, session, visitor, tap_id, 422, write_off=form)


# -- approvals ---------------------------------------------------------------------------------


async def _approvals_page(
    request: Request,
    session: SessionDep,
    visitor: Visitor,
    status: int = 200,
    failed: tuple[int, str, Form] | None = None,
) -> Response:
    rows = await approvals.list_requests(session, visitor.principal, limit=PAGE_ROWS)
    return render(
        request,
        "console/approvals.html",
        status,
        pending=[r for r in rows if r.state is ApprovalState.PENDING],
        decided=[r for r in rows if r.state is not ApprovalState.PENDING],
        me=visitor.principal.subject,
        failed_id=failed[0] if failed else None,
        failed_action=failed[1] if failed else None,
        failed=failed[2] if failed else None,
    )


@router.get("/approvals", name="console_approvals")
async def approvals_queue(
    request: Request, session: SessionDep, visitor: Visitor = Finance
) -> Response:
    return await _approvals_page(request, session, visitor)


@router.post("/approvals/{request_id}/approve", name="console_approve")
async def approve(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    request_id: int = Path(ge=1, le=TAP_ID_MAX),
    visitor: Visitor = Finance,
) -> Response:
    form = bind((OPTIONAL_NOTE,), submitted(request))
    try:
        decided = await approvals.approve(
            session, visitor.principal, tools_of(request, settings), request_id, form.text("note")
        )
    except ClearingError as error:
        await session.rollback()  # whatever was begun is undone; the request stays pending
        refuse(form, "note", error)
        return await _approvals_page(request, session, visitor, 422, (request_id, "approve", form))
    await session.commit()  # durable before an early settlement's files are written
    approvals.write_settlement_files(decided, settings)
    return redirect(request, "console_approvals")


@router.post("/approvals/{request_id}/reject", name="console_reject")
async def reject(
    request: Request,
    session: SessionDep,
    request_id: int = Path(ge=1, le=TAP_ID_MAX),
    visitor: Visitor = Finance,
) -> Response:
    form = bind((REJECT_NOTE,), submitted(request))

    async def reject() -> None:
        await approvals.reject(session, visitor.principal, request_id, form.text("note"))

    if await attempt(form, "note", reject):
        return redirect(request, "console_approvals")
    return await _approvals_page(request, session, visitor, 422, (request_id, "reject", form))
