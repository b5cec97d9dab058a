"""The back office's exception hierarchy: every business failure of one request is a ClearingError.

Each subclass has a stable machine-readable `code`, an HTTP `status` and a `title`; the API maps
them to RFC 9457 problems in one place (clearing/http/problems.py). Imports nothing of FastAPI,
so services and tasks may raise these freely.
"""

from __future__ import annotations


class ClearingError(Exception):
    """Base of every error of `clearing`. Subclasses set `code`, `status` and `title`."""

    code = "clearing_error"
    status = 400
    title = "The request could not be processed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ClearingError):
    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(ClearingError):
    code = "conflict"
    status = 409
    title = "Conflict with the current state"


class InvalidRequest(ClearingError):
    code = "invalid_request"
    status = 422
    title = "The request is not valid"


class Unauthenticated(ClearingError):
    """No credential, or one that does not verify: 401."""

    code = "unauthenticated"
    status = 401
    title = "Authentication required"
    challenge = "Bearer"  # the WWW-Authenticate scheme the caller should use


class SignatureRequired(Unauthenticated):
    """A terminal request without a valid signature (docs/terminal-protocol.md): 401."""

    challenge = "Onecard-Signature"


class Forbidden(ClearingError):
    """A verified caller asking for what its role or identity may not see or do: 403."""

    code = "forbidden"
    status = 403
    title = "Forbidden"


class TooManyRequests(ClearingError):
    """Too many tries within a window: 429, with Retry-After (seconds) saying when to try again."""

    code = "too_many_requests"
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = max(1, retry_after_s)


class PayloadTooLarge(ClearingError):
    code = "payload_too_large"
    status = 413
    title = "Payload too large"


class Unavailable(ClearingError):
    code = "unavailable"
    status = 503
    title = "Service unavailable"


class SecondPersonRequired(Conflict):
    """A write-off, a refund or an early settlement is asked for and approved by a second
    finance officer (clearing/approvals): the direct path refuses it and says where to ask."""

    code = "second_person_required"
    title = "This needs a second person's approval"
