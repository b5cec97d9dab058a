"""Errors of insight: each has a stable code and says what to do (mapped to RFC 9457 by the API)."""

from __future__ import annotations

from clearing.errors import ClearingError


class InsightError(ClearingError):
    code = "insight_error"
    status = 400
    title = "Insight could not be produced"


class BudgetExhausted(InsightError):
    """A release would spend more privacy budget on some day than the cap allows."""

    code = "privacy_budget_exhausted"
    status = 409
    title = "Privacy budget exhausted"


class ReleaseNotFound(InsightError):
    code = "release_not_found"
    status = 404
    title = "No such release"


class PeriodInvalid(InsightError):
    code = "period_invalid"
    status = 422
    title = "The period is not valid"


class DatabaseUnsupported(InsightError):
    """The service runs on embedded SQLite: the request is fine, the deployment cannot serve it."""

    code = "database_unsupported"
    status = 409
    title = "Insight needs PostgreSQL"


class InvariantError(AssertionError):
    """A bug: never an InsightError. The shape of cardio.invariant (insight may not import cardio)."""


def invariant(condition: bool, message: str) -> None:
    """Raise InvariantError if `condition` is false (unlike `assert`, also under `python -O`)."""
    if not condition:
        raise InvariantError(message)
