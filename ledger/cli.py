"""`onecard ledger ...`: the offline checker and read commands over the ledger (no money moves).

The ledger does not know where its database is: whoever mounts these commands passes a function
that gives the URL (clearing passes its settings' database, migrated if needed). Run alone,
`python -m ledger.cli --database-url URL check` works on any ledger database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import create_async_engine

from ledger.check import CheckReport, check_ledger
from ledger.money import yuan
from ledger.reader import LedgerReader
from ledger.types import PAGE_MAX, AccountFlags


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


async def _check(url: str) -> CheckReport:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await check_ledger(conn)
    finally:
        await engine.dispose()


def print_report(report: CheckReport, console: Console) -> None:
    console.print(
        f"checked {report.ledgers_checked} ledgers, {report.accounts_checked} accounts, "
        f"{report.transfers_checked} transfers"
    )
    if report.ok:
        console.print(
            "[green]ledger OK: every balance equals its transfers, debits = credits "
            "per ledger, no flag violated[/green]"
        )
        return
    table = Table(title="ledger problems")
    table.add_column("kind")
    table.add_column("subject")
    table.add_column("detail")
    for problem in report.problems:
        table.add_row(problem.kind, problem.subject, problem.detail)
    console.print(table)
    counts = ", ".join(f"{kind}: {n}" for kind, n in sorted(report.counts.items()))
    console.print(f"[red]ledger check FAILED ({counts})[/red]")


async def _balances(url: str, prefix: str | None, limit: int) -> list:
    engine = create_async_engine(url)
    try:
        return await LedgerReader(engine).list_accounts(name_prefix=prefix, limit=limit)
    finally:
        await engine.dispose()


def balances_table(states: list, title: str = "balances (CNY)") -> Table:
    table = Table(title=title)
    table.add_column("account", no_wrap=True)  # whole at 80 columns: the headers fold instead
    for column in ("natural balance", "debits posted", "credits posted", "pending"):
        table.add_column(column, justify="right", no_wrap=False, min_width=8)
    for state in states:
        b = state.balance
        credit_normal = not state.account.flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS and (
            state.account.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
            or not state.name.startswith(("bank:", "stripe:", "insurer:", "subsidy:", "expense:"))
        )
        natural = b.credit_balance if credit_normal else b.debit_balance
        pending = b.credits_pending - b.debits_pending
        table.add_row(
            escape(state.name),
            yuan(natural),
            yuan(b.debits_posted),
            yuan(b.credits_posted),
            yuan(pending) if pending else "",
        )
    return table


async def _history(url: str, name: str, limit: int) -> tuple:
    engine = create_async_engine(url)
    try:
        reader = LedgerReader(engine)
        found = await reader.lookup_accounts_by_name([name])
        if not found:
            return None, None
        return found[0], await reader.get_account_history(found[0].id, limit=limit)
    finally:
        await engine.dispose()


def build_app(database_url: Callable[[], str]) -> typer.Typer:
    """The `ledger` commands, on the database `database_url()` names (called once per command)."""
    ledger_app = typer.Typer(help="The double-entry ledger: check and read.", no_args_is_help=True)

    @ledger_app.command("check")
    def check() -> None:
        """Recompute every balance from the transfers; exit 1 with a report if anything is off."""
        report = asyncio.run(_check(database_url()))
        print_report(report, Console())
        if not report.ok:
            raise typer.Exit(1)

    @ledger_app.command("balances")
    def balances(
        prefix: str = typer.Option(None, help="Only accounts whose name starts with this."),
        limit: int = typer.Option(100, min=1, max=PAGE_MAX, help="At most this many accounts."),
    ) -> None:
        """Accounts and their balances, by name."""
        states = asyncio.run(_balances(database_url(), prefix, limit))
        Console().print(balances_table(states))

    @ledger_app.command("history")
    def history(
        name: str = typer.Argument(..., help="Account name, e.g. card:3100000000000001."),
        limit: int = typer.Option(50, min=1, max=PAGE_MAX),
    ) -> None:
        """An account's entries with its posted balance before and after each."""
        state, page = asyncio.run(_history(database_url(), name, limit))
        console = Console()
        if state is None:
            console.print(f"[red]no account named {escape(name)}[/red]")
            raise typer.Exit(1)
        table = Table(title=f"history of {escape(name)}")
        for column in ("time (UTC)", "side", "amount", "flags", "before", "after"):
            table.add_column(column)
        for entry in page.entries:
            table.add_row(
                _when(entry.transfer.timestamp),
                "debit" if entry.is_debit else "credit",
                yuan(entry.transfer.amount),
                str(entry.transfer.flags.name or ""),
                yuan(entry.balance_before.credits_posted - entry.balance_before.debits_posted),
                yuan(entry.balance_after.credits_posted - entry.balance_after.debits_posted),
            )
        console.print(table)

    return ledger_app


def main() -> None:
    """`python -m ledger.cli --database-url URL COMMAND`: the commands without the back office."""
    url: dict[str, str] = {}
    standalone = build_app(lambda: url["value"])

    @standalone.callback()
    def database(
        database_url: str = typer.Option(
            ..., "--database-url", envvar="ONECARD_LEDGER_DATABASE_URL", help="SQLAlchemy URL."
        ),
    ) -> None:
        url["value"] = database_url

    standalone(prog_name="ledger")


if __name__ == "__main__":
    main()
