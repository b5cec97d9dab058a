"""Store an imported bank statement (idempotently) and say which of its credits clearing should
look at as fund payments; record the ones clearing booked. Takes a connection, never commits.

Reconciliation keeps what the bank said; it never books: the caller hands the credits to
clearing.funds, which books a fund's payment, and comes back with what was booked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from reconciliation.bank import repository
from reconciliation.bank.matching import LineItem, line_items
from reconciliation.bank.statement import (
    BankEntry,
    BankStatement,
    Direction,
    RefusedEntry,
    StatementConflict,
)

ACTOR_LENGTH_MAX = 100


@dataclass(frozen=True, slots=True)
class StoredStatement:
    statement: BankStatement
    already_imported: bool  # the same file (same statement id, same content) was imported before
    new_entries: tuple[tuple[int, BankEntry], ...]  # (entry row id, entry) stored by this import
    repeated: int  # entries another statement of the account had already brought


@dataclass(frozen=True, slots=True)
class CreditLine:
    """A credit of the statement as clearing.funds sees it (a possible fund payment)."""

    entry_id: int
    item: LineItem


def content_sha256(xml: bytes) -> str:
    return hashlib.sha256(xml).hexdigest()


async def store_statement(
    conn: AsyncConnection,
    statement: BankStatement,
    *,
    sha256: str,
    actor: str,
    now: datetime,
) -> StoredStatement:
    """Store `statement` once: the same statement id with the same file content is already
    imported (nothing new); with other content it is refused (StatementConflict)."""
    existing = await repository.find_statement(conn, statement.account, statement.statement_id)
    if existing is not None:
        if existing.content_sha256 != sha256:
            raise StatementConflict(
                f"statement {statement.statement_id} of account {statement.account} was imported "
                "before with other content; a corrected statement needs a new statement id from "
                "the bank"
            )
        return StoredStatement(statement, True, (), 0)
    statement_pk = await repository.insert_statement(
        conn,
        {
            "account": statement.account,
            "statement_id": statement.statement_id,
            "message_id": statement.message_id,
            "content_sha256": sha256,
            "created_at": statement.created_at,
            "imported_at": now,
            "imported_by": actor[:ACTOR_LENGTH_MAX],
            "opening_fen": statement.opening_fen,
            "closing_fen": statement.closing_fen,
            "entries": len(statement.entries),
            "refused": len(statement.refused),
            "not_booked": statement.not_booked,
        },
    )
    refs = [e.bank_ref for e in statement.entries]
    refused_refs = [r.bank_ref for r in statement.refused]
    seen = await repository.existing_refs(conn, statement.account, refs + refused_refs)
    stored = []
    for entry in statement.entries:
        if entry.bank_ref in seen:
            continue
        seen.add(entry.bank_ref)
        entry_id = await repository.insert_entry(
            conn, _entry_row(statement_pk, statement.account, entry), _detail_rows(entry)
        )
        stored.append((entry_id, entry))
    for refused, ref in zip(statement.refused, refused_refs, strict=True):
        if ref in seen:
            continue
        seen.add(ref)
        await repository.insert_entry(
            conn, _refused_row(statement_pk, statement.account, refused, ref), ()
        )
    repeated = len(statement.entries) - len(stored)
    return StoredStatement(statement, False, tuple(stored), repeated)


def _entry_row(statement_pk: int, account: str, entry: BankEntry) -> dict[str, object]:
    return {
        "statement_pk": statement_pk,
        "entry_no": entry.entry_no,
        "account": account,
        "bank_ref": entry.bank_ref,
        "amount_fen": entry.amount_fen,
        "direction": entry.direction.value,
        "booking_date": entry.booking_date,
        "value_date": entry.value_date,
        "reversal": entry.reversal,
        "batch_ref": entry.batch_ref,
        "info": entry.info,
        "refusal": None,
        "refusal_detail": None,
    }


def _refused_row(
    statement_pk: int, account: str, refused: RefusedEntry, ref: str
) -> dict[str, object]:
    return {
        "statement_pk": statement_pk,
        "entry_no": refused.entry_no,
        "account": account,
        "bank_ref": ref,
        "amount_fen": None,
        "direction": None,
        "booking_date": None,
        "value_date": None,
        "reversal": False,
        "batch_ref": None,
        "info": None,
        "refusal": refused.reason.value,
        "refusal_detail": refused.detail,
    }


def _detail_rows(entry: BankEntry) -> list[dict[str, object]]:
    return [
        {
            "detail_no": n,
            "amount_fen": d.amount_fen,
            "end_to_end_id": d.end_to_end_id,
            "bank_ref": d.bank_ref,
            "batch_ref": d.batch_ref,
            "remittance": d.remittance,
            "counterparty_name": d.counterparty_name,
            "counterparty_account": d.counterparty_account,
        }
        for n, d in enumerate(entry.details, start=1)
    ]


def credit_lines(stored: StoredStatement) -> list[CreditLine]:
    """The new credits (not reversals) of an import: each may be a fund's payment."""
    return [
        CreditLine(entry_id, item)
        for entry_id, entry in stored.new_entries
        if entry.direction is Direction.CREDIT and not entry.reversal
        for item in line_items(entry)
    ]


@dataclass(frozen=True, slots=True)
class FundReceipt:
    """A credit clearing booked as a fund's payment."""

    line: CreditLine
    fund_account: str
    payer: str
    transfer_id: int


async def record_fund_receipts(conn: AsyncConnection, receipts: Sequence[FundReceipt]) -> None:
    await repository.insert_fund_receipts(
        conn,
        [
            {
                "line_ref": r.line.item.ref,
                "entry_id": r.line.entry_id,
                "fund_account": r.fund_account,
                "payer": r.payer,
                "amount_fen": r.line.item.signed_fen,
                "value_date": r.line.item.value_date,
                "transfer_id": repository.transfer_uuid(r.transfer_id),
                "remittance": r.line.item.remittance,
            }
            for r in receipts
        ],
    )
