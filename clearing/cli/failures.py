"""What a failed `onecard` command shows: one red line and an exit code, never a traceback.

Commands catch what they can explain best where it happens; this is the last line for the rest
(2: the command was used wrongly, 1: it failed). ONECARD_DEBUG=1 lets the traceback through.
"""

from __future__ import annotations

import os
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup
from typer.exceptions import TyperException

from cardio.errors import CardioError
from clearing import db
from clearing.books.chart import BooksError
from clearing.errors import ClearingError, InvalidRequest
from clearing.settings import get_settings
from ledger.errors import LedgerError
from terminals.errors import TerminalError

DEBUG_ENV = "ONECARD_DEBUG"
EXIT_FAILED = 1
EXIT_USAGE = 2
MESSAGE_CHARS_MAX = 300


def say(message: str) -> None:
    """Print one error line on stderr."""
    Console(stderr=True).print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= MESSAGE_CHARS_MAX else line[: MESSAGE_CHARS_MAX - 3] + "..."


def _database_failure(error: Exception) -> str | None:
    if db.missing_table(error):
        return f"the database is not set up: {db.UPGRADE_HINT}"
    try:
        url = get_settings().resolved_database_url()
    except (db.DatabaseUrlInvalid, ValidationError):
        return None
    failure = db.connection_failure(url, error)
    return failure.detail if failure else None


def explain(error: Exception) -> tuple[str, int]:
    """One line saying what is wrong and what to do, and the exit code."""
    if isinstance(error, db.DatabaseUrlInvalid):
        return error.detail, EXIT_USAGE
    if isinstance(error, db.DatabaseError):
        return error.detail, EXIT_FAILED
    if isinstance(error, ClearingError):
        code = EXIT_USAGE if isinstance(error, InvalidRequest) else EXIT_FAILED
        return f"{error.code}: {_first_line(error.detail)}", code
    if isinstance(error, LedgerError | CardioError | TerminalError):
        return f"{error.code}: {_first_line(error.message)}", EXIT_FAILED
    if isinstance(error, BooksError):
        return _first_line(str(error)), EXIT_FAILED
    if isinstance(error, ValidationError) and error.title == "Settings":
        first = error.errors()[0]
        name = "ONECARD_" + "_".join(str(part) for part in first["loc"]).upper()
        return f"{name} is not valid: {first['msg']}", EXIT_USAGE
    known = _database_failure(error)
    if known:
        return known, EXIT_FAILED
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror}", EXIT_FAILED
    detail = _first_line(str(error))
    return (
        f"unexpected {type(error).__name__}{': ' + detail if detail else ''} "
        f"(run again with {DEBUG_ENV}=1 to see the traceback)",
        EXIT_FAILED,
    )


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


class OnecardGroup(TyperGroup):
    """The top-level group: every command runs inside its invoke, so this is the one place."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (TyperException, typer.Exit, typer.Abort):  # usage errors and exits: Typer's own
            raise
        except Exception as error:
            if debugging():
                raise
            message, code = explain(error)
            say(message)
            raise typer.Exit(code) from None
