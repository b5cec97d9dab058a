"""The full `onecard`: the terminal side's commands plus the back office's, imported plainly.

Every command module is an ordinary import here, so the import contracts see it and a missing
one fails loudly. clearing.cli imports this module only when the server stack is installed.
"""

from __future__ import annotations

import typer

from clearing.approvals.models import ApprovalKind
from clearing.cards.service import block_card
from clearing.cli import (
    approvals_cmd,
    bank_cmd,
    bills_cmd,
    clearing_cmd,
    db_cmd,
    demo_cmd,
    registry_cmd,
    residents_cmd,
    serve_cmd,
    staff_cmd,
)
from clearing.cli.card_cmd import build_card_app
from clearing.cli.database import ready_database_url
from clearing.cli.failures import EXPLAINERS, OnecardGroup
from insight import cli as insight_cli
from ledger import cli as ledger_cli
from reconciliation import cli as reconciliation_cli
from terminals import cli as terminal_cli

__all__ = ["EXPLAINERS", "app"]

app = typer.Typer(
    name="onecard",
    cls=OnecardGroup,  # one place maps every error a command lets through to one line
    help="onecard: the city one-card clearing and payments platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_cmd.register(app)
app.add_typer(ledger_cli.build_app(ready_database_url), name="ledger")
app.add_typer(build_card_app(), name="card")  # cardio's, with `issue --register`
app.add_typer(terminal_cli.fares_app, name="fares")
app.add_typer(terminal_cli.terminal_app, name="terminal")
serve_cmd.register(app)
registry_cmd.register(app)
residents_cmd.register(app)
staff_cmd.register(app)
approvals_cmd.register(app)
clearing_cmd.register(app)
bank_cmd.register(app)
demo_cmd.register(app)
bills_cmd.register(app)
insight_cli.register(app)


def _ask_break_write_off(break_id: int, reason: str, by: str) -> None:
    approvals_cmd.ask(ApprovalKind.BREAK_WRITE_OFF, str(break_id), reason, by)


reconciliation_cli.register(
    app,
    database_url=ready_database_url,
    block_card=block_card,
    ask_write_off=_ask_break_write_off,
)
