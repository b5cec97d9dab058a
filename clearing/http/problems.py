"""RFC 9457 problem responses: the one place where every error becomes an HTTP answer.

Domain errors (`ClearingError`, the ledger's and the books' errors), request validation, HTTP
errors raised by the framework and unexpected exceptions all leave as
`application/problem+json` with `type`, `title`, `status`, `detail` and a stable `code`.
An unexpected exception is logged with its traceback and answered 500 without internals.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from clearing.books.chart import BooksError
from clearing.errors import ClearingError
from ledger.errors import InvariantError, LedgerError

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://onecard.example/problems/"
VALIDATION_ERRORS_MAX = 20  # bound the size of a 422 body

log = logging.getLogger("clearing.api")

_E = TypeVar("_E", bound=Exception)

_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict with the current state"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("invalid_request", "The request is not valid"),
    429: ("too_many_requests", "Too many requests"),
    503: ("unavailable", "Service unavailable"),
}


class Problem(BaseModel):
    """An RFC 9457 problem detail, as every error of this API is answered."""

    type: str = Field(description="URI naming the kind of problem")
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable code")
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Validation errors (422 only)"
    )


# For `responses=` of routes: documents the problem body in the OpenAPI schema.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}}
    for status in (400, 401, 403, 404, 409, 413, 422)
}


# A 429 an operation documents: too many tries, Retry-After says how long to wait.
TOO_MANY_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {
        "model": Problem,
        "content": {PROBLEM_MEDIA_TYPE: {}},
        "description": "Too many wrong tries: wait the seconds Retry-After says",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}},
    }
}


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code.replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance is not None:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _handled(error: Exception, kind: type[_E]) -> _E:
    """The error a handler was registered for (Starlette passes it typed as Exception)."""
    if not isinstance(error, kind):
        raise InvariantError(f"the {kind.__name__} handler got a {type(error).__name__}")
    return error


async def _clearing_error(request: Request, error: Exception) -> JSONResponse:
    error = _handled(error, ClearingError)
    challenge = getattr(error, "challenge", "Bearer")
    headers = {"WWW-Authenticate": challenge} if error.status == 401 else None
    retry_after_s = getattr(error, "retry_after_s", None)
    if isinstance(retry_after_s, int):
        headers = {**(headers or {}), "Retry-After": str(retry_after_s)}
    return problem_response(
        error.status,
        error.code,
        error.title,
        error.detail,
        instance=request.url.path,
        headers=headers,
    )


async def _ledger_error(request: Request, error: Exception) -> JSONResponse:
    error = _handled(error, LedgerError)
    status = error.status
    if status >= 500:
        log.error("ledger error on %s: %s", request.url.path, error.message)
        return problem_response(
            500 if status == 500 else status,
            error.code,
            "Ledger failure",
            "The ledger could not complete the request; it has been logged.",
            instance=request.url.path,
        )
    return problem_response(
        status, error.code, "Ledger refused the request", error.message, instance=request.url.path
    )


async def _books_error(request: Request, error: Exception) -> JSONResponse:
    error = _handled(error, BooksError)
    return problem_response(
        422, error.code, "Not in the chart of accounts", str(error), instance=request.url.path
    )


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    error = _handled(error, RequestValidationError)
    errors = [
        {key: value for key, value in item.items() if key in ("loc", "msg", "type")}
        for item in error.errors()[:VALIDATION_ERRORS_MAX]
    ]
    count = len(error.errors())
    return problem_response(
        422,
        "invalid_request",
        "The request is not valid",
        f"{count} field(s) failed validation; see `errors`.",
        instance=request.url.path,
        errors=jsonable_encoder(errors),
    )


# The methods an `Allow` header may name (RFC 9110 §10.2.1), in the order it names them.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers at this request's path. Starlette's own 405
    names only the first route that matched the path (`POST` for /v1/cards, which also has GET)."""
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in routes):
            allowed.append(method)
    return allowed


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    error = _handled(error, StarletteHTTPException)
    code, title = _HTTP_CODES.get(error.status_code, ("http_error", "HTTP error"))
    detail = error.detail if isinstance(error.detail, str) else title
    headers = dict(getattr(error, "headers", None) or {})
    if error.status_code == 405:
        # A mounted app (the docs' static files) names its own methods; the routes are ours.
        allowed = allowed_methods(request)
        if allowed or "Allow" not in headers:
            headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    return problem_response(
        error.status_code,
        code,
        title,
        detail,
        instance=request.url.path,
        headers=headers or None,
    )


def _data_exception(error: Exception) -> bool:
    """A value the database cannot take (SQLSTATE class 22: out of range, bad input)."""
    sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("22")


async def _out_of_range(request: Request, error: Exception) -> JSONResponse:
    """A client value the endpoint did not bound reached the database: still the client's
    error (422), never a 500. Logged, so the endpoint gets its bound."""
    if isinstance(error, DBAPIError) and not _data_exception(error):
        return await _unexpected(request, error)
    log.warning("unbounded value reached the database on %s: %s", request.url.path, error)
    return problem_response(
        422,
        "value_out_of_range",
        "A value is out of range",
        "a number or value in the request is outside what can be stored",
        instance=request.url.path,
    )


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return problem_response(
        500,
        "internal_error",
        "Internal server error",
        "An unexpected error occurred; it has been logged.",
        instance=request.url.path,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error to a problem response (the single mapping point)."""
    app.add_exception_handler(ClearingError, _clearing_error)
    app.add_exception_handler(LedgerError, _ledger_error)
    app.add_exception_handler(BooksError, _books_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(DBAPIError, _out_of_range)
    app.add_exception_handler(Exception, _unexpected)
