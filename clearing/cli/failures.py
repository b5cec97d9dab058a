"""What a failed `onecard` command shows: one red line and an exit code, never a traceback.

The generic part (no traceback, exit codes, ONECARD_DEBUG) is cardio.oneline, shared with a
terminal installed without the back office; this module adds what the back office knows: the
database, its own errors, the ledger's, the terminals' and a malformed setting.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import ValidationError

from cardio.oneline import (
    DEBUG_ENV,
    EXIT_FAILED,
    EXIT_USAGE,
    Explainer,
    OneLineGroup,
    debugging,
    explain_coded,
    explain_with,
    first_line,
    say,
)
from clearing import db
from clearing.books.chart import BooksError
from clearing.errors import ClearingError, InvalidRequest
from clearing.settings import get_settings
from ledger.errors import LedgerError
from terminals.cli import explain_terminal

__all__ = ["DEBUG_ENV", "EXPLAINERS", "OnecardGroup", "debugging", "explain", "say"]


def _database_failure(error: Exception) -> str | None:
    if db.missing_table(error):
        return f"the database is not set up: {db.UPGRADE_HINT}"
    try:
        url = get_settings().resolved_database_url()
    except (db.DatabaseUrlInvalid, ValidationError):
        return None
    failure = db.connection_failure(url, error)
    return failure.detail if failure else None


def explain_clearing(error: Exception) -> tuple[str, int] | None:
    """The back office's errors and the database's; None for others."""
    if isinstance(error, db.DatabaseUrlInvalid):
        return error.detail, EXIT_USAGE
    if isinstance(error, db.DatabaseError):
        return error.detail, EXIT_FAILED
    if isinstance(error, ClearingError):
        code = EXIT_USAGE if isinstance(error, InvalidRequest) else EXIT_FAILED
        return f"{error.code}: {first_line(error.detail)}", code
    if isinstance(error, LedgerError):
        return explain_coded(error)
    if isinstance(error, BooksError):
        return first_line(str(error)), EXIT_FAILED
    if isinstance(error, ValidationError) and error.title == "Settings":
        first = error.errors()[0]
        name = "ONECARD_" + "_".join(str(part) for part in first["loc"]).upper()
        return f"{name} is not valid: {first['msg']}", EXIT_USAGE
    known = _database_failure(error)
    return (known, EXIT_FAILED) if known else None


EXPLAINERS: tuple[Explainer, ...] = (explain_clearing, explain_terminal)


def explain(error: Exception) -> tuple[str, int]:
    """One line saying what is wrong and what to do, and the exit code."""
    return explain_with(EXPLAINERS, error)


class OnecardGroup(OneLineGroup):
    """The top-level group of the full `onecard`."""

    explainers: ClassVar[tuple[Explainer, ...]] = EXPLAINERS
