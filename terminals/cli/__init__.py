"""The terminal side's command line: `card` (cardio's), `terminal` and `fares`.

Imports nothing above terminals and cardio, so `pip install "onecard[terminal]"` (no FastAPI,
SQLAlchemy or Celery) runs it; the full `onecard` (clearing.cli) mounts the same apps.
"""

from __future__ import annotations

from typing import ClassVar

import typer

from cardio.cli import build_card_app
from cardio.oneline import Explainer, OneLineGroup, explain_coded, run
from terminals.cli.fares import fares_app
from terminals.cli.terminal import terminal_app
from terminals.errors import TerminalError

__all__ = ["TerminalSideGroup", "app", "explain_terminal", "fares_app", "main", "terminal_app"]


def explain_terminal(error: Exception) -> tuple[str, int] | None:
    """A terminal's own errors: their code and message, exit 1."""
    return explain_coded(error) if isinstance(error, TerminalError) else None


class TerminalSideGroup(OneLineGroup):
    """Every error a terminal-side command lets through: one line, exit 1 (2 for misuse)."""

    explainers: ClassVar[tuple[Explainer, ...]] = (explain_terminal,)


def mount(app: typer.Typer) -> None:
    """Add `terminal` and `fares` to a command line."""
    app.add_typer(terminal_app, name="terminal")
    app.add_typer(fares_app, name="fares")


app = typer.Typer(
    name="onecard",
    cls=TerminalSideGroup,
    help="onecard on a terminal: cards, the terminal, fares.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(build_card_app(), name="card")
mount(app)


def main() -> None:
    run(app, TerminalSideGroup.explainers)
