"""`onecard bank import FILE`: import the escrow account's camt.053 statement, store its lines for
reconciliation, and book each payment a fund made through clearing.funds (the only place money
from the funds is booked). `onecard bank statements`: what was imported.

Parse, call the services, print. The file is parsed before the database is touched; storing the
lines and booking the fund payments commit together, so an import is all or nothing, and
importing the same file again changes nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cardio.atomicfile import MODE_GROUP, write_bytes_atomic
from clearing.cli.clearing_cmd import (
    ACTOR_LENGTH_MAX,
    number_column,
    parse_day,
    report_table,
    text_column,
)
from clearing.cli.database import ready_database_url
from clearing.cli.money import yuan
from clearing.db.base import utc_now
from clearing.funds import service as funds
from clearing.settings import get_settings, same_bank_account
from ledger.port import LedgerPort
from reconciliation.bank import repository as bank_repository
from reconciliation.bank import service as bank
from reconciliation.bank.camt053 import parse_camt053
from reconciliation.bank.camt053_writer import camt053_xml
from reconciliation.bank.models import statements as statements_table
from reconciliation.bank.sample import FundPaying, sample_statement
from reconciliation.bank.statement import (
    STATEMENT_BYTES_MAX,
    BankStatement,
    StatementError,
    StatementTooLarge,
    StatementWrongAccount,
)

console = Console()
ACTOR_DEFAULT = "finance:cli"
STATEMENTS_SHOWN_MAX = 50


class StatementNothingToPay(StatementError):
    code = "bank_sample_nothing_to_pay"


@dataclass(frozen=True, slots=True)
class ImportedStatement:
    stored: bank.StoredStatement
    booked: tuple[funds.BookedPayment, ...]


def read_statement_file(path: Path) -> bytes:
    """The file's bytes, refusing one larger than a statement can be before reading it."""
    size = path.stat().st_size
    if size > STATEMENT_BYTES_MAX:
        raise StatementTooLarge(
            f"{path} is {size} bytes; a statement file is at most {STATEMENT_BYTES_MAX}"
        )
    return path.read_bytes()


def parse_for_escrow(xml: bytes, escrow_account: str) -> tuple[BankStatement, ...]:
    """The file's statements, refused as a whole if one is of another account than escrow."""
    parsed = parse_camt053(xml)
    for statement in parsed:
        if not same_bank_account(statement.account, escrow_account):
            raise StatementWrongAccount(
                f"statement {statement.statement_id} is of account {statement.account}, not the "
                f"escrow account {escrow_account} (ONECARD_ESCROW_ACCOUNT); nothing was imported"
            )
    return parsed


async def import_statements(
    conn: AsyncConnection,
    ledger: LedgerPort,
    parsed: tuple[BankStatement, ...],
    *,
    sha256: str,
    actor: str,
    now: datetime,
) -> list[ImportedStatement]:
    """Store each statement and book its new credits that come from a fund (in `conn`)."""
    imported = []
    for statement in parsed:
        stored = await bank.store_statement(conn, statement, sha256=sha256, actor=actor, now=now)
        lines = bank.credit_lines(stored)
        receipts = [
            funds.Receipt(
                line.item.ref,
                line.item.signed_fen,
                line.item.value_date,
                line.item.counterparty_account,
                line.item.counterparty_name,
            )
            for line in lines
        ]
        booked = await funds.book_receipts(conn, ledger, receipts)
        by_ref = {line.item.ref: line for line in lines}
        await bank.record_fund_receipts(
            conn,
            [
                bank.FundReceipt(
                    by_ref[b.bank_ref], b.payer.claims_account, b.payer.code, b.transfer_id
                )
                for b in booked
            ],
        )
        imported.append(ImportedStatement(stored, tuple(booked)))
    return imported


async def _import(url: str, xml: bytes, parsed: tuple[BankStatement, ...], actor: str) -> Any:
    from ledger.writer import Ledger

    async with await Ledger.open(url) as ledger, ledger.transaction() as conn:
        return await import_statements(
            conn, ledger, parsed, sha256=bank.content_sha256(xml), actor=actor, now=utc_now()
        )


def print_import(imported: list[ImportedStatement], out: Console | None = None) -> None:
    out = out or console
    for item in imported:
        statement = item.stored.statement
        if item.stored.already_imported:
            out.print(
                f"statement {escape(statement.statement_id)} was imported before: nothing changed"
            )
            continue
        out.print(
            f"statement {escape(statement.statement_id)} of {escape(statement.account)}: "
            f"{len(item.stored.new_entries)} entries stored"
            + (f", {item.stored.repeated} already known" if item.stored.repeated else "")
            + (
                f", {statement.not_booked} not yet booked by the bank"
                if statement.not_booked
                else ""
            )
        )
        if item.booked:
            table = report_table("fund payments booked (bank:escrow <- fund)")
            text_column(table, "fund", 12)
            text_column(table, "bank reference", 14)
            number_column(table, "value date", 10)
            number_column(table, "CNY", 12)
            for b in item.booked:
                table.add_row(
                    escape(b.payer.claims_account),
                    escape(b.bank_ref),
                    b.value_date.isoformat(),
                    yuan(b.amount_fen) + ("" if b.new else " (before)"),
                )
            out.print(table)
        if statement.refused:
            table = report_table(f"{len(statement.refused)} entries refused (kept with reason)")
            number_column(table, "entry", 5)
            text_column(table, "reason", 16)
            text_column(table, "detail", 30)
            for refused in statement.refused:
                table.add_row(str(refused.entry_no), refused.reason.value, escape(refused.detail))
            out.print(table)


async def _statements(url: str) -> list[Any]:
    from ledger.writer import Ledger

    async with await Ledger.open(url) as ledger:
        async with ledger.engine.connect() as conn:
            rows = await conn.execute(
                select(statements_table)
                .order_by(statements_table.c.imported_at.desc(), statements_table.c.id.desc())
                .limit(STATEMENTS_SHOWN_MAX)
            )
            listed = rows.all()
            total = (
                await conn.execute(select(func.count()).select_from(statements_table))
            ).scalar_one()
    return [listed, total]


async def sample_for_day(url: str, day: date, escrow_account: str) -> bytes:
    """The statement paying the settled `day`'s payouts and its fund claims (demo data)."""
    from clearing.funds import repository as funds_repository
    from ledger.writer import Ledger

    paid_on = day + timedelta(days=1)
    async with await Ledger.open(url) as ledger, ledger.engine.connect() as conn:
        payouts = await bank_repository.settlement_payouts(conn, paid_on, paid_on)
        claims = [c for c in await bank_repository.fund_claims(conn, day) if c.business_day == day]
        payers = {p.claims_account: p for p in await funds_repository.fund_payers(conn)}
    paying = [
        FundPaying(payers[c.account].name, payers[c.account].bank_account, c.amount_fen, day)
        for c in claims
        if c.account in payers
    ]
    if not payouts and not paying:
        raise StatementNothingToPay(
            f"{day} has no payout and no fund claim to pay: settle it first (onecard settle)"
        )
    return camt053_xml([sample_statement(escrow_account, paid_on, payouts, paying)])


def register(app: typer.Typer) -> None:
    bank_app = typer.Typer(
        help="The escrow account's bank statements (ISO 20022 camt.053).", no_args_is_help=True
    )
    app.add_typer(bank_app, name="bank")

    @bank_app.command("import")
    def import_(
        file: Path = typer.Argument(
            ..., exists=True, dir_okay=False, readable=True, help="A camt.053 XML file."
        ),
        actor: str = typer.Option(ACTOR_DEFAULT, help="Who imports (audited)."),
    ) -> None:
        """Import a statement: store its lines and book the funds' payments (once)."""
        if not 1 <= len(actor.strip()) <= ACTOR_LENGTH_MAX:
            raise typer.BadParameter(f"1 .. {ACTOR_LENGTH_MAX} characters", param_hint="--actor")
        xml = read_statement_file(file)  # the file is read and checked before the database
        parsed = parse_for_escrow(xml, get_settings().escrow_account)
        url = ready_database_url()
        print_import(asyncio.run(_import(url, xml, parsed, actor.strip())))

    @bank_app.command("sample")
    def sample(
        day: str = typer.Option(..., "--date", help="A settled business day YYYY-MM-DD."),
        out: Path = typer.Option(..., "--out", dir_okay=False, help="Where to write the XML."),
    ) -> None:
        """Demo data: the camt.053 a bank would send for a settled day (payouts, fund claims)."""
        business_day = parse_day(day, "--date")
        url = ready_database_url()
        xml = asyncio.run(sample_for_day(url, business_day, get_settings().escrow_account))
        write_bytes_atomic(out, xml, mode=MODE_GROUP)
        console.print(f"wrote {out}: import it with `onecard bank import {out}`")

    @bank_app.command("statements")
    def statements() -> None:
        """The statements imported, newest first."""
        listed, total = asyncio.run(_statements(ready_database_url()))
        if not listed:
            console.print("no statement imported yet: onecard bank import FILE")
            return
        table = report_table(f"bank statements ({len(listed)} of {total})")
        text_column(table, "statement", 14)
        text_column(table, "account", 12)
        number_column(table, "entries", 7)
        number_column(table, "refused", 7)
        number_column(table, "closing CNY", 12)
        text_column(table, "imported", 16)
        for r in listed:
            table.add_row(
                escape(r.statement_id),
                escape(r.account),
                str(r.entries),
                str(r.refused),
                "" if r.closing_fen is None else yuan(r.closing_fen),
                f"{r.imported_at:%Y-%m-%d %H:%M} {escape(r.imported_by)}",
            )
        console.print(table)
