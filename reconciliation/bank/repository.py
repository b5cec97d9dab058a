"""Every query of the bank side of reconciliation: storing statements as imported, and reading
back statement lines, fund receipts, settlement payouts and fund claims for the matchers.

Only SQL: no rule, no commit (the caller owns the transaction), no ledger write.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.settlement.models import SettlementClaim, SettlementLine
from clearing.settlement.references import end_to_end_id, message_id, payment_information_id
from ledger.tables import from_uuid
from reconciliation.bank.funds import FundClaim, FundPayment
from reconciliation.bank.matching import ExpectedPayout, PayoutSource
from reconciliation.bank.models import details, entries, fund_receipts, statements
from reconciliation.bank.statement import BankEntry, Direction, EntryDetail

settlement_lines = cast(Table, SettlementLine.__table__)
settlement_claims = cast(Table, SettlementClaim.__table__)
IN_CHUNK = 500  # bank references per IN (...) list
CLAIMS_MAX = 200_000  # per run: ten years of daily claims of fifty schemes


@dataclass(frozen=True, slots=True)
class StoredStatementRow:
    id: int
    content_sha256: str
    entries: int
    refused: int
    not_booked: int


async def find_statement(
    conn: AsyncConnection, account: str, statement_id: str
) -> StoredStatementRow | None:
    row = (
        await conn.execute(
            select(
                statements.c.id,
                statements.c.content_sha256,
                statements.c.entries,
                statements.c.refused,
                statements.c.not_booked,
            ).where(statements.c.account == account, statements.c.statement_id == statement_id)
        )
    ).first()
    return None if row is None else StoredStatementRow(*row)


async def insert_statement(conn: AsyncConnection, values: dict[str, Any]) -> int:
    result = await conn.execute(insert(statements).values(**values).returning(statements.c.id))
    return int(result.scalar_one())


async def existing_refs(conn: AsyncConnection, account: str, refs: Iterable[str]) -> set[str]:
    """Which of these bank references the account's stored entries already hold."""
    wanted = sorted(set(refs))
    found: set[str] = set()
    for start in range(0, len(wanted), IN_CHUNK):
        rows = await conn.execute(
            select(entries.c.bank_ref).where(
                entries.c.account == account,
                entries.c.bank_ref.in_(wanted[start : start + IN_CHUNK]),
            )
        )
        found.update(r[0] for r in rows)
    return found


async def insert_entry(
    conn: AsyncConnection, values: dict[str, Any], detail_rows: Sequence[dict[str, Any]]
) -> int:
    result = await conn.execute(insert(entries).values(**values).returning(entries.c.id))
    entry_id = int(result.scalar_one())
    if detail_rows:
        await conn.execute(insert(details), [{**row, "entry_id": entry_id} for row in detail_rows])
    return entry_id


async def insert_fund_receipts(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(fund_receipts), list(rows))


async def booked_entries(conn: AsyncConnection, first: date, last: date) -> list[BankEntry]:
    """The entries (not refused) with a value date in [first, last], with their details."""
    rows = (
        await conn.execute(
            select(entries)
            .where(
                entries.c.refusal.is_(None),
                entries.c.value_date >= first,
                entries.c.value_date <= last,
            )
            .order_by(entries.c.value_date, entries.c.id)
        )
    ).all()
    details_of: dict[int, list[EntryDetail]] = defaultdict(list)
    ids = [r.id for r in rows]
    for start in range(0, len(ids), IN_CHUNK):
        found = await conn.execute(
            select(details)
            .where(details.c.entry_id.in_(ids[start : start + IN_CHUNK]))
            .order_by(details.c.entry_id, details.c.detail_no)
        )
        for d in found:
            details_of[d.entry_id].append(
                EntryDetail(
                    d.amount_fen,
                    d.end_to_end_id,
                    d.bank_ref,
                    d.batch_ref,
                    d.remittance,
                    d.counterparty_name,
                    d.counterparty_account,
                )
            )
    return [
        BankEntry(
            entry_no=r.entry_no,
            bank_ref=r.bank_ref,
            amount_fen=r.amount_fen,
            direction=Direction(r.direction),
            booking_date=r.booking_date,
            value_date=r.value_date,
            reversal=r.reversal,
            batch_ref=r.batch_ref,
            info=r.info,
            details=tuple(details_of[r.id]),
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class RefusedRow:
    bank_ref: str
    statement_id: str
    refusal: str
    detail: str
    imported_on: date


async def refused_entries(conn: AsyncConnection, since: date) -> list[RefusedRow]:
    """Entries refused at import by statements imported since `since` (their dates may be
    unreadable: the import day stands for them)."""
    rows = await conn.execute(
        select(
            entries.c.bank_ref,
            statements.c.statement_id,
            entries.c.refusal,
            entries.c.refusal_detail,
            statements.c.imported_at,
        )
        .join(statements, statements.c.id == entries.c.statement_pk)
        .where(
            entries.c.refusal.is_not(None),
            statements.c.imported_at >= datetime.combine(since, time(), tzinfo=UTC),
        )
        .order_by(entries.c.id)
    )
    return [RefusedRow(r[0], r[1], r[2], r[3] or "", r[4].date()) for r in rows]


async def fund_payments(conn: AsyncConnection, last: date) -> list[FundPayment]:
    """Every fund payment booked from a statement line with a value date up to `last`."""
    rows = await conn.execute(
        select(
            fund_receipts.c.fund_account,
            fund_receipts.c.line_ref,
            fund_receipts.c.value_date,
            fund_receipts.c.amount_fen,
            fund_receipts.c.remittance,
        )
        .where(fund_receipts.c.value_date <= last)
        .order_by(fund_receipts.c.value_date, fund_receipts.c.line_ref)
    )
    return [FundPayment(*r) for r in rows]


async def fund_line_refs(conn: AsyncConnection, first: date, last: date) -> set[str]:
    """Line references booked as fund payments (matcher 7's, not matcher 5's)."""
    rows = await conn.execute(
        select(fund_receipts.c.line_ref).where(
            fund_receipts.c.value_date >= first, fund_receipts.c.value_date <= last
        )
    )
    return {r[0] for r in rows}


async def settlement_payouts(
    conn: AsyncConnection, first: date, last: date
) -> list[ExpectedPayout]:
    """The payouts of settled days whose execution date (the day after) is in [first, last]:
    what settlement's pain.001 instructed the bank to pay out of the escrow account."""
    rows = await conn.execute(
        select(settlement_lines.c.business_day, settlement_lines.c.participant_code,
               settlement_lines.c.net_fen)
        .where(
            settlement_lines.c.net_fen > 0,
            settlement_lines.c.business_day >= first - timedelta(days=1),
            settlement_lines.c.business_day <= last - timedelta(days=1),
        )
        .order_by(settlement_lines.c.business_day, settlement_lines.c.participant_code)
    )  # fmt: skip
    payouts = []
    for day, code, net_fen in rows:
        msg = message_id(day)
        payouts.append(
            ExpectedPayout(
                key=f"settlement:{day.isoformat()}:{code}",
                source=PayoutSource.SETTLEMENT,
                counterpart=code,
                signed_fen=-int(net_fen),
                expected_date=day + timedelta(days=1),  # the pain.001's ReqdExctnDt
                end_to_end_id=end_to_end_id(day, code),
                batch_refs=frozenset({msg, payment_information_id(day)}),
            )
        )
    return payouts


async def fund_claims(conn: AsyncConnection, last: date) -> list[FundClaim]:
    """What the funds owe: each settled day's claim per fund account, up to `last`."""
    rows = await conn.execute(
        select(
            settlement_claims.c.account,
            settlement_claims.c.business_day,
            settlement_claims.c.amount_fen,
        )
        .where(settlement_claims.c.business_day <= last, settlement_claims.c.amount_fen > 0)
        .order_by(settlement_claims.c.account, settlement_claims.c.business_day)
        .limit(CLAIMS_MAX)
    )
    return [FundClaim(account, day, int(fen)) for account, day, fen in rows]


def transfer_uuid(transfer_id: int) -> uuid.UUID:
    return uuid.UUID(int=transfer_id)


STATEMENTS_BALANCED_MAX = 400  # statement days whose closing balance a run compares: a year's


@dataclass(frozen=True, slots=True)
class ClosingBalance:
    """What the bank said the escrow account held at the end of a statement day."""

    account: str
    statement_id: str
    day: date  # the last booking date of the statement's entries: its closing balance's date
    closing_fen: int


async def closing_balances(conn: AsyncConnection, last: date) -> list[ClosingBalance]:
    """Per account and statement day up to `last` (the newest STATEMENTS_BALANCED_MAX days), the
    closing balance of the statement imported last for that day. A statement without a closing
    balance (CLBD) or without a booked entry (nothing dates it) is not among them."""
    day = func.max(entries.c.booking_date).label("day")
    per_statement = (
        select(statements.c.id, statements.c.account, statements.c.statement_id,
               statements.c.closing_fen, day)
        .join(entries, entries.c.statement_pk == statements.c.id)
        .where(statements.c.closing_fen.is_not(None), entries.c.booking_date.is_not(None))
        .group_by(statements.c.id, statements.c.account, statements.c.statement_id,
                  statements.c.closing_fen)
        .subquery()
    )  # fmt: skip
    rows = await conn.execute(
        select(per_statement)
        .where(per_statement.c.day <= last)
        .order_by(per_statement.c.day.desc(), per_statement.c.id.desc())
        .limit(STATEMENTS_BALANCED_MAX * 4)
    )
    newest: dict[tuple[str, date], ClosingBalance] = {}
    for _id, account, statement_id, closing_fen, on in rows:
        if (account, on) not in newest and len(newest) < STATEMENTS_BALANCED_MAX:
            newest[(account, on)] = ClosingBalance(account, statement_id, on, int(closing_fen))
    return list(newest.values())


async def fund_receipts_between(
    conn: AsyncConnection, first: date, last: date
) -> list[tuple[date, int, int]]:
    """(value date, amount, ledger transfer id) of the funds' payments booked from statement
    lines with a value date in [first, last]."""
    rows = await conn.execute(
        select(fund_receipts.c.value_date, fund_receipts.c.amount_fen, fund_receipts.c.transfer_id)
        .where(fund_receipts.c.value_date >= first, fund_receipts.c.value_date <= last)
        .order_by(fund_receipts.c.value_date)
    )
    return [(on, int(fen), from_uuid(tid)) for on, fen, tid in rows]
