"""The `onecard` command: one Typer app; each area adds its commands from its own module.

Commands parse arguments, call services and print with rich; they hold no business rules.
"""

from __future__ import annotations

import importlib
import sys

import typer

from clearing.cli.database import ready_database_url
from clearing.cli.failures import OnecardGroup, debugging, explain, say
from ledger import cli as ledger_cli

app = typer.Typer(
    name="onecard",
    cls=OnecardGroup,  # one place maps every error a command lets through to one line
    help="onecard: the city one-card clearing and payments platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# Each module defines register(app) and adds its commands or sub-apps.
_COMMAND_MODULES = (
    "clearing.cli.db_cmd",
    "clearing.cli.card_cmd",
    "clearing.cli.fares_cmd",
    "clearing.cli.terminal_cmd",
    "clearing.cli.serve_cmd",
    "clearing.cli.registry_cmd",
    "clearing.cli.clearing_cmd",
    "clearing.cli.demo_cmd",
    "insight.cli",
)

for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as error:
        if error.name != _name:
            raise
        continue  # an area whose commands are not built yet
    _module.register(app)

app.add_typer(ledger_cli.build_app(ready_database_url), name="ledger")


def main() -> None:
    try:
        app()
    except Exception as error:  # raised outside any command (e.g. while parsing): still one line
        if debugging():
            raise
        message, code = explain(error)
        say(message)
        sys.exit(code)
