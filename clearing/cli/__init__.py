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

Start-up: importing the full command line costs ~1.5 s of CPU (SQLAlchemy, FastAPI, Celery,
Stripe, every command module). `onecard --help` (and `onecard` alone) lists the top-level
commands from FULL_COMMANDS without importing them; any command, a group's help included,
imports the full app first and runs as it always did. tests/clearing/test_cli_startup.py keeps
the listing identical to the full app's and checks that it imports none of the back office.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import typer
from typer import _click
from typer.core import TyperCommand, TyperGroup

from cardio.oneline import EXIT_FAILED, Explainer, OneLineGroup, run, say

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
ONECARD_HELP = "onecard: the city one-card clearing and payments platform."
# Third-party packages of the server extra: all of them found, `onecard --help` lists the full
# command line (a partial install is found out when a command imports it, as before).
SERVER_STACK = ("sqlalchemy", "alembic", "fastapi", "celery", "pydantic_settings", "stripe")
# The full `onecard`'s top-level commands in the order its help lists them, each with the first
# paragraph of its help, exactly (tests/clearing/test_cli_startup.py compares them).
FULL_COMMANDS = {
    "serve": "Serve the HTTP API (OpenAPI docs at /docs, health at /healthz and /readyz).",
    "clear": "Clear every staged tap record: verify TACs, deduplicate, post, quarantine.",
    "settle": "Settle a business day: commission, payouts, CSV and pain.001 instructions.",
    "statement": "An operator's statement: what was cleared per line and terminal.",
    "subsidies": "Concession claims per operator, line and day (full fare - charged).",
    "demo": "The city demo on the embedded default: cards, a day of buses and a clinic, "
    "clearing,\nsettlement (SQLite, eager Celery, in-process software cards; data in var/demo).",
    "reconcile": "Reconcile a business day: ledger, terminals, cards (and every matcher "
    "registered).",
    "db": "Database schema (Alembic migrations).",
    "ledger": "The double-entry ledger: check and read.",
    "card": "Cards: key store, issue, read, attach to a reader.",
    "fares": "Check and try out a GTFS-Fares v2 fare feed.",
    "terminal": "Run a terminal (bus validator, clinic, load kiosk) on a reader.",
    "registry": "Participants, terminals, cards and tokens.",
    "residents": "Residents' accounts and their linked cards.",
    "staff": "Staff accounts of the finance console.",
    "approvals": "Write-offs, refunds and early settlements waiting for a second officer.",
    "quarantine": "Records the engine could not clear.",
    "bank": "The escrow account's bank statements (ISO 20022 camt.053).",
    "bills": "Water, power and heating bills: lookups, payments, confirmations.",
    "insight": "Ridership, journeys and trends from card data, published privacy-safe.",
    "breaks": "Reconciliation breaks: list, show and work them.",
}


def _needs_server(name: str, help_text: str, missing: str) -> typer.models.CommandInfo:
    def command(ctx: typer.Context) -> None:
        say(f"`onecard {name}` is the back office: {SERVER_INSTALL} (this install lacks {missing})")
        raise typer.Exit(EXIT_FAILED)

    return typer.models.CommandInfo(
        name=name,
        callback=command,
        help=f"{help_text} [needs the server install]",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )


def _terminal_side(missing: str) -> tuple[typer.Typer, tuple[Explainer, ...]]:
    """The terminal side's `onecard`, and a line for each command it lacks."""
    from terminals import cli as terminal_cli

    terminal_only = terminal_cli.app
    for name, help_text in SERVER_COMMANDS.items():
        terminal_only.registered_commands.append(_needs_server(name, help_text, missing))
    return terminal_only, terminal_cli.TerminalSideGroup.explainers


@functools.cache
def loaded() -> tuple[typer.Typer, tuple[Explainer, ...]]:
    """The command line and its explainers: the full one (clearing.cli.server), or the terminal
    side's if a third-party module of the server stack is missing."""
    try:
        from clearing.cli import server
    except ModuleNotFoundError as missing:
        if not missing.name or missing.name.split(".")[0] in OUR_PACKAGES:
            raise
        return _terminal_side(missing.name)
    return server.app, server.EXPLAINERS


@functools.cache
def _full_group() -> TyperGroup:
    group = typer.main.get_command(loaded()[0])
    if not isinstance(group, TyperGroup):
        raise TypeError("the onecard command line is a group of commands")
    return group


def _explain_loaded(error: Exception) -> tuple[str, int] | None:
    """What the loaded command line's explainers say of `error` (None: nothing)."""
    for explainer in loaded()[1]:
        known = explainer(error)
        if known is not None:
            return known
    return None


class StartingGroup(OneLineGroup):
    """`onecard` as the console script starts it: its own help lists FULL_COMMANDS; every
    command is the full app's, imported when it is resolved."""

    explainers = (_explain_loaded,)
    listing = False

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        # what the help lists (and a misspelt command's suggestions are drawn from)
        self.commands = {
            name: TyperCommand(name, help=line) for name, line in FULL_COMMANDS.items()
        }

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if self.listing:
            return super().get_command(ctx, cmd_name)
        return _full_group().get_command(ctx, cmd_name)

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


starting = typer.Typer(
    name="onecard",
    cls=StartingGroup,
    help=ONECARD_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@starting.callback()
def _onecard() -> None:
    pass  # a group of its own: its commands are the full app's


def server_installed() -> bool:
    """Whether the server extra's third-party packages are found (none of them is imported)."""
    return all(importlib.util.find_spec(name) is not None for name in SERVER_STACK)


def __getattr__(name: str) -> Any:
    """`app` and `EXPLAINERS`: the loaded command line (imported on first use)."""
    if name == "app":
        return loaded()[0]
    if name == "EXPLAINERS":
        return loaded()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    if server_installed():
        run(starting, (_explain_loaded,))
    else:
        app, explainers = loaded()
        run(app, explainers)
