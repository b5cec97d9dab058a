"""The resident's pages: sign up, sign in and out, the language switch, and the home page.

Thin, like the API's endpoints: read the form, call clearing/residents' services, show the
answer. Each service error lands on the field it is about, in the reader's language.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from clearing.http.deps import SessionDep, SettingsDep
from clearing.residents import signin
from clearing.residents.errors import (
    LoginFailed,
    LoginInvalid,
    LoginLocked,
    LoginTaken,
    PasswordRefused,
)
from clearing.residents.rules import PASSWORD_LENGTH_MAX, PASSWORD_LENGTH_MIN
from clearing.web.forms import Field, InputKind, bind, blank, signed_in
from clearing.web.guard import new_csrf_token, submitted
from clearing.web.i18n import LANG_COOKIE, LANGS, N_
from clearing.web.pages import href, redirect, redirect_to, render, safe_next
from clearing.web.session import (
    MaybeVisitor,
    VisitorKind,
    clear_tokens,
    set_cookie,
    start_resident_session,
)

router = APIRouter()
LANG_COOKIE_AGE_S = 365 * 86_400

LOGIN = Field(
    "login",
    N_("Email address or mobile number"),
    length_max=254,
    autocomplete="username",
    hint=N_("For example han@example.cn or 13800138000."),
)
SIGNIN_FIELDS = (
    LOGIN,
    Field(
        "password",
        N_("Password"),
        InputKind.PASSWORD,
        length_max=PASSWORD_LENGTH_MAX,
        autocomplete="current-password",
    ),
    Field("next", "", InputKind.HIDDEN, required=False, length_max=500),
)
SIGNUP_FIELDS = (
    LOGIN,
    Field(
        "password",
        N_("Password"),
        InputKind.PASSWORD,
        length_max=PASSWORD_LENGTH_MAX,
        autocomplete="new-password",
        hint=N_("At least 10 characters; a few words you remember are best."),
    ),
    Field(
        "display_name",
        N_("Your name (optional)"),
        required=False,
        length_max=100,
        autocomplete="name",
    ),
)


@router.get("/", name="home")
async def home(request: Request, visitor: MaybeVisitor) -> Response:
    if visitor is not None and visitor.kind is VisitorKind.RESIDENT:
        return redirect(request, "cards")
    return redirect(request, "signin")


@router.get("/lang/{code}", name="language")
async def choose_language(request: Request, code: str, next: str | None = None) -> Response:
    """The language switch: a link (works without JavaScript); remembered for a year."""
    if code in LANGS:
        set_cookie(request, LANG_COOKIE, code, LANG_COOKIE_AGE_S)
    return redirect_to(safe_next(next) or href(request, "home"))


@router.get("/signin", name="signin")
async def signin_page(request: Request, visitor: MaybeVisitor, next: str | None = None) -> Response:
    form = blank(*SIGNIN_FIELDS, next=safe_next(next) or "")
    return render(request, "signin.html", form=form)


@router.post("/signin")
async def signin_submit(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    form = bind(SIGNIN_FIELDS, submitted(request))
    pair = await signed_in(
        form,
        lambda login, password: signin.log_in(session, settings, login, password),
        login="login",
        wrong=N_("The login or the password is wrong."),
        failed=LoginFailed,
        locked=LoginLocked,
    )
    if pair is None:
        return render(request, "signin.html", 422, form=form)
    start_resident_session(request, pair)
    new_csrf_token(request)
    return redirect_to(safe_next(form.values.get("next")) or href(request, "cards"))


@router.get("/signup", name="signup")
async def signup_page(request: Request) -> Response:
    return render(request, "signup.html", form=blank(*SIGNUP_FIELDS))


@router.post("/signup")
async def signup_submit(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    form = bind(SIGNUP_FIELDS, submitted(request))
    if form.valid:
        login, password = form.text("login"), form.values["password"]
        try:
            await signin.sign_up(
                session, settings, login, password, form.text("display_name") or None
            )
            pair = await signin.log_in(session, settings, login, password)
        except LoginInvalid:
            form.refuse("login", N_("Type an email address or a mobile number, without spaces."))
        except PasswordRefused:
            form.refuse(
                "password",
                N_(
                    "Use %(low)s to %(high)s characters, not your login and not a well-known "
                    "password."
                ),
                low=PASSWORD_LENGTH_MIN,
                high=PASSWORD_LENGTH_MAX,
            )
        except LoginTaken:
            form.refuse("login", N_("This login already has an account: sign in with it."))
        else:
            start_resident_session(request, pair)
            new_csrf_token(request)
            return redirect(request, "cards")
    return render(request, "signup.html", 422, form=form)


@router.post("/signout", name="signout")
async def signout(request: Request, session: SessionDep, visitor: MaybeVisitor) -> Response:
    if visitor is not None and visitor.kind is VisitorKind.RESIDENT and visitor.resident_id:
        await signin.log_out(
            session, visitor.resident_id, visitor.principal.token_pk, everywhere=False
        )
    clear_tokens(request)
    new_csrf_token(request)
    return redirect(request, "signin")
