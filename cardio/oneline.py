"""What a failed command shows: one red line and an exit code, never a traceback.

The generic part of every onecard command line, so that a terminal installed without the back
office fails as politely as the full `onecard`: each package's group adds the errors it knows
(`explainers`), this module knows the card layer's, files and the rest. Exit codes: 2 the command
was used wrongly, 1 it failed. ONECARD_DEBUG=1 lets the traceback through.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import typer
from rich.console import Console
from rich.markup import escape
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup
from typer.exceptions import TyperException

from cardio.errors import CardioError

DEBUG_ENV = "ONECARD_DEBUG"
EXIT_FAILED = 1
EXIT_USAGE = 2
MESSAGE_CHARS_MAX = 300

# Says what an error means (line, exit code), or None for one it does not know.
Explainer = Callable[[Exception], "tuple[str, int] | None"]


def say(message: str) -> None:
    """Print one error line on stderr."""
    Console(stderr=True).print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)


def first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= MESSAGE_CHARS_MAX else line[: MESSAGE_CHARS_MAX - 3] + "..."


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def explain_coded(error: Exception) -> tuple[str, int]:
    """An error with a stable `code` and a `message` (cardio, terminals, ledger): exit 1."""
    return f"{error.code}: {first_line(error.message)}", EXIT_FAILED  # type: ignore[attr-defined]


def explain_generic(error: Exception) -> tuple[str, int]:
    """Files, and a last line for anything else."""
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror}", EXIT_FAILED
    detail = first_line(str(error))
    return (
        f"unexpected {type(error).__name__}{': ' + detail if detail else ''} "
        f"(run again with {DEBUG_ENV}=1 to see the traceback)",
        EXIT_FAILED,
    )


def explain_with(explainers: tuple[Explainer, ...], error: Exception) -> tuple[str, int]:
    """The card layer's errors, then what the explainers know, then files and the rest."""
    if isinstance(error, CardioError):
        return explain_coded(error)
    for explainer in explainers:
        known = explainer(error)
        if known is not None:
            return known
    return explain_generic(error)


def usage_line(error: ClickException, command_path: str = "") -> str:
    """A usage error (a misspelt option, a missing argument, a bad value) as one line naming
    what to type for help, instead of Typer's multi-line box. `command_path`: the command the
    error was in when the error does not say (an option's value missing)."""
    message = (
        first_line(error.format_message()).rstrip(".").replace(". Did you mean", "; did you mean")
    )
    message = message[:1].lower() + message[1:]
    ctx = getattr(error, "ctx", None)
    path = ctx.command_path if ctx is not None else command_path
    if isinstance(error, UsageError) and path:
        return f"{message}; try: {path} --help"
    return message


def _one_line(error: ClickException, ctx: Any = None) -> typer.Exit:
    path = ""
    if ctx is not None:
        path = " ".join(filter(None, (ctx.command_path, ctx.invoked_subcommand)))
    say(usage_line(error, path))
    return typer.Exit(error.exit_code)  # 2 for a usage error, 1 for any other


class OneLineGroup(TyperGroup):
    """A top-level group: every command is parsed and runs inside its invoke (its own options
    are parsed in make_context), so this is the one place."""

    explainers: ClassVar[tuple[Explainer, ...]] = ()

    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except NoArgsIsHelpError:
            raise  # the help is the answer
        except ClickException as error:
            raise _one_line(error) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise  # a group without its command: its help is the answer
        except ClickException as error:
            raise _one_line(error, ctx) from None
        except (TyperException, typer.Exit, typer.Abort):  # exits: Typer's own
            raise
        except Exception as error:
            if debugging():
                raise
            say_and_exit = explain_with(self.explainers, error)
            say(say_and_exit[0])
            raise typer.Exit(say_and_exit[1]) from None


def run(app: typer.Typer, explainers: tuple[Explainer, ...]) -> None:
    """Run a command line; an error raised outside any command (parsing) is still one line."""
    try:
        app()
    except Exception as error:
        if debugging():
            raise
        message, code = explain_with(explainers, error)
        say(message)
        sys.exit(code)
