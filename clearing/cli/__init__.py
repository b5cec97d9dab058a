"""The `onecard` command: one Typer app; each area adds its commands from its own module.

Commands parse arguments, call services and print with rich; they hold no business rules.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="onecard",
    help="onecard: the city one-card clearing and payments platform.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

# Each module defines register(app) and adds its commands or sub-apps.
_COMMAND_MODULES = (
    "clearing.cli.db_cmd",
    "clearing.cli.ledger_cmd",
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


def main() -> None:
    app()
