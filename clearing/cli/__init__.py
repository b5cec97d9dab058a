"""The `onecard` command (the console script's entry point: clearing.cli:main).

One script serves two installs:
- `pip install "onecard[server]"` (what scripts/setup.sh installs): everything, from
  clearing.cli.server, which imports every command module plainly;
- `pip install "onecard[terminal]"` (a bus validator, a kiosk): only cardio, terminals and
  pyscard's dependencies. clearing.server cannot be imported (no FastAPI, SQLAlchemy, Celery),
  so `onecard` is the terminal side's command line (terminals.cli: card, terminal, fares) and
  each back-office command says which install it needs.

Why here and not a second script: a distribution declares `onecard` once, and the package layout
is fixed, so the entry point stays in clearing.cli and imports nothing heavy unless it is there.
The one guarded import below fails over only when a third-party module is missing; a missing
module of ours is a bug and raises.
"""

from __future__ import annotations

import typer

from cardio.oneline import EXIT_FAILED, Explainer, run, say
from terminals import cli as terminal_cli

OUR_PACKAGES = frozenset({"ledger", "cardio", "terminals", "clearing", "reconciliation", "insight"})
SERVER_COMMANDS = {
    "serve": "Serve the HTTP API.",
    "clear": "Clear every staged tap record.",
    "settle": "Settle a business day.",
    "statement": "An operator's statement.",
    "subsidies": "Concession claims per operator, line and day.",
    "demo": "The city demo on the embedded default.",
    "db": "Database schema (Alembic migrations).",
    "ledger": "The double-entry ledger: check and read.",
    "registry": "Participants, terminals, cards and tokens.",
    "quarantine": "Records the engine could not clear.",
    "staff": "Staff accounts of the finance console.",
    "approvals": "Write-offs, refunds and early settlements waiting for a second officer.",
    "insight": "Ridership, journeys and trends, published privacy-safe.",
}
SERVER_INSTALL = 'pip install "onecard[server]"'

try:
    from clearing.cli import server
except ModuleNotFoundError as missing:
    if not missing.name or missing.name.split(".")[0] in OUR_PACKAGES:
        raise
    server = None  # type: ignore[assignment]
    SERVER_MISSING = missing.name
else:
    SERVER_MISSING = ""


def _needs_server(name: str, help_text: str) -> typer.models.CommandInfo:
    def command(ctx: typer.Context) -> None:
        say(
            f"`onecard {name}` is the back office: {SERVER_INSTALL} "
            f"(this install lacks {SERVER_MISSING})"
        )
        raise typer.Exit(EXIT_FAILED)

    return typer.models.CommandInfo(
        name=name,
        callback=command,
        help=f"{help_text} [needs the server install]",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )


def _terminal_side() -> typer.Typer:
    """The terminal side's `onecard`, and a line for each command it lacks."""
    terminal_only = terminal_cli.app
    for name, help_text in SERVER_COMMANDS.items():
        terminal_only.registered_commands.append(_needs_server(name, help_text))
    return terminal_only


if server is not None:
    app = server.app
    EXPLAINERS: tuple[Explainer, ...] = server.EXPLAINERS
else:
    app = _terminal_side()
    EXPLAINERS = terminal_cli.TerminalSideGroup.explainers


def main() -> None:
    run(app, EXPLAINERS)
