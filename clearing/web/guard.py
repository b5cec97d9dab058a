"""What every page of the web app gets before a handler runs: security headers on every answer,
and the CSRF check on every POST (a double-submit token: the form's hidden `csrf_token` must
equal the HttpOnly `oc_csrf` cookie, which a page on another site can neither read nor set).

The check is here, in front of every route, so no form can forget it. A refused POST is the 403
page in the reader's language. The parsed form is left on request.state for the handler.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from fastapi import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clearing.web.session import set_cookie

CSRF_COOKIE = "oc_csrf"
CSRF_FIELD = "csrf_token"
CSRF_TOKEN_BYTES = 32
FORM_BYTES_MAX = 64 * 1024  # our forms are a few fields; nothing bigger is a form of ours
FORM_FIELDS_MAX = 50
STATE_FORM = "web_form"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# The pages load only their own files: no inline script or style, no frames, forms post home.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii")),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


def csrf_token(request: Request) -> str:
    """This browser's CSRF token (made, and its cookie set, on the first page that needs it)."""
    token = getattr(request.state, "web_csrf", None) or request.cookies.get(CSRF_COOKIE)
    if not token or len(token) > 128:
        token = new_csrf_token(request)
    request.state.web_csrf = token
    return token


def new_csrf_token(request: Request) -> str:
    """A fresh token (at every sign-in and sign-out: a token known before is worth nothing)."""
    token = secrets.token_urlsafe(CSRF_TOKEN_BYTES)
    request.state.web_csrf = token
    set_cookie(request, CSRF_COOKIE, token, None)
    return token


def submitted(request: Request) -> dict[str, str]:
    """The POSTed form (each field's first value), as the guard parsed it."""
    return dict(getattr(request.state, STATE_FORM, {}))


class SecurityHeaders:
    """Adds the security headers to every answer of the web app (pages, redirects, files);
    pages are never cached (they show balances and tokens)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_static = scope.get("path", "").startswith(scope.get("root_path", "") + "/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() not in {h for h, _ in SECURITY_HEADERS}
                ]
                headers.extend(SECURITY_HEADERS)
                if not is_static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


Refusal = Callable[[Request, int], Awaitable[Response]]


class CsrfGuard:
    """Every unsafe request must carry the form token that matches the browser's cookie."""

    def __init__(self, app: ASGIApp, refuse: Refusal) -> None:
        self.app = app
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body, whole = await _read_body(receive, FORM_BYTES_MAX)
        if not whole:
            await (await self.refuse(request, 413))(scope, receive, send)
            return
        fields = _parse(body) if media_type == FORM_MEDIA_TYPE else None
        cookie = request.cookies.get(CSRF_COOKIE, "")
        given = (fields or {}).get(CSRF_FIELD, "")
        if fields is None or not cookie or not hmac.compare_digest(given, cookie):
            await (await self.refuse(request, 403))(scope, receive, send)
            return
        scope.setdefault("state", {})[STATE_FORM] = fields
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _parse(body: bytes) -> dict[str, str] | None:
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=FORM_FIELDS_MAX,
            strict_parsing=False,
        )
    except (UnicodeDecodeError, ValueError):
        return None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields
