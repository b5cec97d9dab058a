"""Who is at the browser: the web session, kept in one encrypted cookie, holding a resident's
sign-in (access and refresh tokens of clearing/residents) or a staff member's (a bearer token
of clearing/auth with its role).

The cookie is Fernet (AES-CBC + HMAC-SHA256): the browser can neither read nor alter it;
HttpOnly, SameSite=Lax, Secure over https (settings.web_cookie_secure overrides). Every request
checks the token against the database, so a sign-out or a revoked token ends the session at
once. Cookies a handler sets are written by `CookieWriter` when the response starts.

A resident's expired access token is renewed with the refresh token (used once). A browser's
parallel page loads present the same expired cookie at once: the first renews, the others ride
on that renewal within its grace (signin.REFRESH_GRACE_S); the renewed cookie says so
(`renewed`), and the first request that brings it back ends that grace.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

from cryptography.fernet import Fernet, InvalidToken
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cardio.atomicfile import MODE_SECRET, write_text_atomic
from clearing.auth import service as auth_service
from clearing.auth.models import Role
from clearing.auth.service import Principal
from clearing.errors import Unauthenticated
from clearing.http.deps import SessionDep
from clearing.residents import service as residents_service
from clearing.residents import signin
from clearing.residents.errors import RefreshRaced, RefreshRefused, RefreshReused
from clearing.residents.signin import TokenPair
from clearing.settings import Settings

SESSION_COOKIE = "oc_session"
SESSION_KEY_FILE = "web-session-key.txt"
SESSION_COOKIE_BYTES_MAX = 2048  # a cookie longer than this is not ours
SESSION_FORMAT = 1
STATE_COOKIES = "web_cookies"  # request.state: the cookies CookieWriter adds to the response


class VisitorKind(enum.StrEnum):
    RESIDENT = "resident"
    STAFF = "staff"


@dataclass(frozen=True, slots=True)
class SessionTokens:
    """What the cookie holds: the bearer token, and a resident's refresh token (`renewed`: just
    renewed, the grace of the token it replaced is still open)."""

    kind: VisitorKind
    access_token: str
    refresh_token: str | None = None
    renewed: bool = False


@dataclass(frozen=True, slots=True)
class Visitor:
    """A signed-in person: a resident (subject: the resident id) or staff (their role)."""

    kind: VisitorKind
    principal: Principal
    roles: frozenset[Role] = field(default_factory=frozenset)

    @property
    def resident_id(self) -> str | None:
        return self.principal.subject if self.kind is VisitorKind.RESIDENT else None

    def has_role(self, *roles: Role) -> bool:
        return self.kind is VisitorKind.STAFF and bool(self.roles.intersection(roles))


@dataclass(frozen=True, slots=True)
class CookieToSet:
    name: str
    value: str
    max_age_s: int | None  # None: a session cookie; 0: delete it


def session_key(settings: Settings) -> bytes:
    """ONECARD_WEB_SESSION_KEY if set; else data_dir/web-session-key.txt, made on first use."""
    configured = settings.web_session_key.get_secret_value()
    if configured:
        return configured.encode("ascii")
    path = Path(settings.data_dir) / SESSION_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path.read_text().strip().encode("ascii")
    key = Fernet.generate_key()
    try:
        write_text_atomic(path, key.decode("ascii") + "\n", mode=MODE_SECRET, exclusive=True)
    except FileExistsError:  # a concurrent starter made it first: use theirs
        return path.read_text().strip().encode("ascii")
    return key


def _fernet(request: Request) -> Fernet:
    fernet = getattr(request.app.state, "web_fernet", None)
    if fernet is None:
        fernet = Fernet(session_key(request.app.state.settings))
        request.app.state.web_fernet = fernet
    return fernet


def set_cookie(request: Request, name: str, value: str, max_age_s: int | None) -> None:
    """Have this response set (or, with max_age_s=0, delete) a cookie of the web app."""
    pending: list[CookieToSet] = getattr(request.state, STATE_COOKIES, [])
    pending = [cookie for cookie in pending if cookie.name != name] + [
        CookieToSet(name, value, max_age_s)
    ]
    setattr(request.state, STATE_COOKIES, pending)


def read_tokens(request: Request) -> SessionTokens | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw or len(raw) > SESSION_COOKIE_BYTES_MAX:
        return None
    settings: Settings = request.app.state.settings
    try:
        payload = json.loads(
            _fernet(request).decrypt(raw.encode("ascii"), ttl=settings.resident_refresh_token_ttl_s)
        )
        if payload.get("v") != SESSION_FORMAT:
            return None
        return SessionTokens(
            VisitorKind(payload["kind"]),
            str(payload["access"]),
            payload.get("refresh"),
            payload.get("renewed") is True,
        )
    except (InvalidToken, ValueError, KeyError, TypeError, UnicodeEncodeError):
        return None  # not ours, altered, too old, or of an older format: signed out


def write_tokens(request: Request, tokens: SessionTokens) -> None:
    """Start (or renew) the session: the cookie lives as long as the refresh token may."""
    payload = {
        "v": SESSION_FORMAT,
        "kind": tokens.kind.value,
        "access": tokens.access_token,
        "refresh": tokens.refresh_token,
    }
    if tokens.renewed:
        payload["renewed"] = True
    sealed = _fernet(request).encrypt(json.dumps(payload).encode("utf-8")).decode("ascii")
    settings: Settings = request.app.state.settings
    set_cookie(request, SESSION_COOKIE, sealed, settings.resident_refresh_token_ttl_s)


def clear_tokens(request: Request) -> None:
    set_cookie(request, SESSION_COOKIE, "", 0)


def start_resident_session(request: Request, pair: TokenPair) -> None:
    """After clearing.residents.signin.log_in: this browser is that resident's."""
    write_tokens(
        request, SessionTokens(VisitorKind.RESIDENT, pair.access_token, pair.refresh_token)
    )


def start_staff_session(request: Request, access_token: str) -> None:
    """For staff sign-in (the console): a clearing/auth bearer token with the staff role.
    Its expiry is the token's own (`expires_at`); there is no refresh."""
    write_tokens(request, SessionTokens(VisitorKind.STAFF, access_token, None))


async def _principal(session: AsyncSession, access_token: str) -> Principal | None:
    try:
        return await auth_service.authenticate_bearer(session, f"Bearer {access_token}")
    except Unauthenticated:
        return None


async def _refreshed(
    request: Request, session: AsyncSession, tokens: SessionTokens
) -> Principal | None:
    """A resident whose access token expired: the refresh token gives the next pair (once)."""
    if tokens.kind is not VisitorKind.RESIDENT or not tokens.refresh_token:
        return None
    settings: Settings = request.app.state.settings
    try:
        pair = await signin.refresh(
            session, settings, tokens.refresh_token, grace_s=signin.REFRESH_GRACE_S
        )
    except RefreshRaced as raced:
        # a parallel page load of this browser renewed the sign-in a moment ago: its answer
        # carries the new cookie; this one rides on that renewal and leaves the cookie alone
        return raced.principal
    except RefreshRefused:
        return None
    except RefreshReused:
        # a copied cookie: the whole sign-in is revoked, and that stands whatever the page
        # does next (it redirects to sign-in, which would roll the request back)
        await session.commit()
        return None
    # the new pair is the browser's from now on, whatever the page does next (a 404 page
    # rolls its request back: the cookie would then name tokens that were never stored)
    await session.commit()
    write_tokens(
        request,
        SessionTokens(VisitorKind.RESIDENT, pair.access_token, pair.refresh_token, renewed=True),
    )
    return await _principal(session, pair.access_token)


async def _confirm_renewal(request: Request, session: AsyncSession, tokens: SessionTokens) -> None:
    """The browser brought its renewed cookie back: the token it replaced has no grace now."""
    if tokens.refresh_token:
        await signin.confirm_renewal(session, tokens.refresh_token)
        await session.commit()  # whatever the page does next, as a renewal stands
    write_tokens(request, replace(tokens, renewed=False))


async def visitor_of(request: Request, session: AsyncSession) -> Visitor | None:
    """The signed-in visitor of this request, or None (and the stale cookie goes)."""
    cached = getattr(request.state, "web_visitor", False)
    if cached is not False:
        return cached
    visitor = await _find_visitor(request, session)
    request.state.web_visitor = visitor
    return visitor


async def _find_visitor(request: Request, session: AsyncSession) -> Visitor | None:
    tokens = read_tokens(request)
    if tokens is None:
        if SESSION_COOKIE in request.cookies:
            clear_tokens(request)
        return None
    principal = await _principal(session, tokens.access_token)
    if principal is None:
        principal = await _refreshed(request, session, tokens)
    elif tokens.renewed:
        await _confirm_renewal(request, session, tokens)
    if principal is None:
        clear_tokens(request)
        return None
    if tokens.kind is VisitorKind.RESIDENT:
        if principal.role is not Role.RESIDENT or not principal.subject:
            return None
        if await residents_service.account_of(session, principal.subject) is None:
            return None
        return Visitor(VisitorKind.RESIDENT, principal)
    if principal.role is Role.RESIDENT:
        return None
    return Visitor(VisitorKind.STAFF, principal, frozenset({principal.role}))


async def _visitor(request: Request, session: SessionDep) -> Visitor | None:
    return await visitor_of(request, session)


class SignInRequired(Exception):
    """Raised by a page that needs a signed-in visitor: the app redirects to `signin_route`."""

    def __init__(self, signin_route: str) -> None:
        super().__init__(signin_route)
        self.signin_route = signin_route


class PageNotFound(Exception):
    """The 404 page: what a visitor is not allowed to see looks exactly like what is not there."""


RESIDENT_SIGNIN_ROUTE = "signin"
STAFF_SIGNIN_ROUTE = "staff_signin"  # the console's sign-in page names its route so


async def _signed_in_as(request: Request, session: AsyncSession, kind: VisitorKind) -> Visitor:
    """The visitor, who must be signed in as `kind`: else that kind's sign-in page."""
    visitor = await visitor_of(request, session)
    if visitor is None or visitor.kind is not kind:
        raise SignInRequired(
            RESIDENT_SIGNIN_ROUTE if kind is VisitorKind.RESIDENT else STAFF_SIGNIN_ROUTE
        )
    return visitor


async def _resident(request: Request, session: SessionDep) -> Visitor:
    return await _signed_in_as(request, session, VisitorKind.RESIDENT)


def staff_with(*roles: Role) -> Any:
    """A dependency: a staff visitor holding one of `roles`. Not signed in (or a resident):
    the staff sign-in page; staff without the role: 404."""

    async def _staff(request: Request, session: SessionDep) -> Visitor:
        visitor = await _signed_in_as(request, session, VisitorKind.STAFF)
        if not visitor.has_role(*roles):
            raise PageNotFound()
        return visitor

    return Depends(_staff)


MaybeVisitor = Annotated[Visitor | None, Depends(_visitor)]
ResidentVisitor = Annotated[Visitor, Depends(_resident)]


class CookieWriter:
    """Adds the cookies handlers asked for (set_cookie) to the response as it starts."""

    def __init__(self, app: ASGIApp, secure: bool | None) -> None:
        self.app = app
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secure = self.secure if self.secure is not None else scope.get("scheme") == "https"

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                pending = scope.get("state", {}).get(STATE_COOKIES, [])
                headers = list(message.get("headers", []))
                for cookie in pending:
                    headers.append(
                        (b"set-cookie", _cookie_header(cookie, secure).encode("latin-1"))
                    )
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookies)


def _cookie_header(cookie: CookieToSet, secure: bool) -> str:
    parts = [f"{cookie.name}={cookie.value}", "Path=/web", "HttpOnly", "SameSite=Lax"]
    if cookie.max_age_s is not None:
        parts.append(f"Max-Age={cookie.max_age_s}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
