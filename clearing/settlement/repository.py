"""Every query of settlement: what a day earned and claims, the run with its lines and claims,
undoing runs of days that had not begun, operator statements and subsidy reports.

Only SQL: no rule, no commit (the caller owns the transaction), no ledger.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import cast

from sqlalchemy import Table, case, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clearing import books
from clearing.billing.models import BillPayment
from clearing.engine.models import ClearedTap
from clearing.registry.models import Participant
from clearing.settlement.files import PayoutLine
from clearing.settlement.models import SettlementClaim, SettlementLine, SettlementRun
from clearing.settlement.payout import (
    Claim,
    Earnings,
    Payee,
    RunTotals,
    Settlement,
    TransferIds,
)

cleared = cast(Table, ClearedTap.__table__)
runs = cast(Table, SettlementRun.__table__)
lines_table = cast(Table, SettlementLine.__table__)
claims_table = cast(Table, SettlementClaim.__table__)
participants = cast(Table, Participant.__table__)
bill_payments = cast(Table, BillPayment.__table__)


async def day_earnings(conn: AsyncConnection, business_day: date) -> dict[str, Earnings]:
    """Per participant: what its cleared records settled on `business_day` earned (no loads)."""
    rows = await conn.execute(
        select(
            cleared.c.participant_code,
            func.count(),
            func.sum(cleared.c.amount_fen),
            func.sum(cleared.c.subsidy_fen),
            func.sum(cleared.c.insured_fen),
        )
        .where(cleared.c.settlement_day == business_day, cleared.c.kind != "load")
        .group_by(cleared.c.participant_code)
    )
    earnings = {
        r[0]: Earnings(int(r[1]), int(r[2] or 0), int(r[3] or 0), int(r[4] or 0)) for r in rows
    }
    for code, paid in (await day_bill_payments(conn, business_day)).items():
        was = earnings.get(code, Earnings(0, 0, 0, 0))
        earnings[code] = Earnings(
            was.taps + paid.taps, was.fares_fen + paid.fares_fen, was.subsidy_fen, was.insured_fen
        )
    return earnings


async def day_bill_payments(conn: AsyncConnection, business_day: date) -> dict[str, Earnings]:
    """Per biller: the bills paid online that settle on `business_day` (posted to its payable
    by the bill workflow; bills paid by card at a counter are cleared taps, counted above)."""
    rows = await conn.execute(
        select(bill_payments.c.biller_code, func.count(), func.sum(bill_payments.c.amount_fen))
        .where(
            bill_payments.c.settlement_day == business_day,
            bill_payments.c.transfer_id.is_not(None),
        )
        .group_by(bill_payments.c.biller_code)
    )
    return {r[0]: Earnings(int(r[1]), int(r[2] or 0), 0, 0) for r in rows}


async def payees(conn: AsyncConnection, codes: Iterable[str]) -> dict[str, Payee]:
    """The registry's name, bank and commission of each participant in `codes` that exists."""
    found = await conn.execute(
        select(
            participants.c.code,
            participants.c.name,
            participants.c.bank_name,
            participants.c.bank_account,
            participants.c.commission_bp,
        ).where(participants.c.code.in_(sorted(codes)))
    )
    return {
        code: Payee(name, bank_name, bank_account, int(bp))
        for code, name, bank_name, bank_account, bp in found
    }


async def day_claims(conn: AsyncConnection, business_day: date) -> list[Claim]:
    """What the subsidy funds, then the insurers, owe for the day: one claim per scheme."""
    claims: list[Claim] = []
    for kind, scheme_col, amount_col, account_of in (
        ("subsidy", cleared.c.subsidy_scheme, cleared.c.subsidy_fen, books.subsidy),
        ("insurer", cleared.c.insurer_scheme, cleared.c.insured_fen, books.insurer),
    ):
        rows = await conn.execute(
            select(scheme_col, func.count(), func.sum(amount_col))
            .where(
                cleared.c.settlement_day == business_day,
                scheme_col.is_not(None),
                amount_col > 0,
            )
            .group_by(scheme_col)
            .order_by(scheme_col)
        )
        claims.extend(Claim(account_of(r[0]), kind, r[0], int(r[1]), int(r[2] or 0)) for r in rows)
    return claims


@dataclass(frozen=True, slots=True)
class RunHeader:
    """The settlement_runs row of a day, as it is written."""

    business_day: date
    cutoff_at: datetime
    actor: str
    created_at: datetime
    message_id: str
    totals: RunTotals


async def insert_run(conn: AsyncConnection, run: RunHeader) -> None:
    await conn.execute(
        insert(runs).values(
            business_day=run.business_day,
            state="posted",
            cutoff_at=run.cutoff_at,
            actor=run.actor,
            created_at=run.created_at,
            message_id=run.message_id,
            participants=run.totals.participants,
            taps=run.totals.taps,
            gross_fen=run.totals.gross_fen,
            commission_fen=run.totals.commission_fen,
            net_fen=run.totals.net_fen,
        )
    )


def _uuid(value: int | None) -> uuid.UUID | None:
    return uuid.UUID(int=value) if value else None


async def insert_lines(
    conn: AsyncConnection,
    business_day: date,
    lines: Iterable[PayoutLine],
    ids: Mapping[str, TransferIds],
) -> None:
    rows = [
        {
            "business_day": business_day,
            "participant_code": line.participant_code,
            "participant_name": line.participant_name,
            "bank_account": line.bank_account,
            "bank_name": line.bank_name,
            "taps": line.taps,
            "fares_fen": line.fares_fen,
            "subsidy_fen": line.subsidy_fen,
            "insured_fen": line.insured_fen,
            "gross_fen": line.gross_fen,
            "commission_bp": line.commission_bp,
            "commission_fen": line.commission_fen,
            "net_fen": line.net_fen,
            "commission_transfer_id": _uuid(ids[line.participant_code].commission),
            "payout_transfer_id": _uuid(ids[line.participant_code].payout),
        }
        for line in lines
    ]
    if rows:
        await conn.execute(insert(lines_table), rows)


async def insert_claims(conn: AsyncConnection, business_day: date, claims: Iterable[Claim]) -> None:
    rows = [
        {
            "business_day": business_day,
            "account": claim.account,
            "kind": claim.kind,
            "scheme": claim.scheme,
            "items": claim.items,
            "amount_fen": claim.amount_fen,
        }
        for claim in claims
    ]
    if rows:
        await conn.execute(insert(claims_table), rows)


async def load_settlement(conn: AsyncConnection, business_day: date) -> Settlement | None:
    """The stored settlement of a day (lines by participant, claims by account), or None."""
    run = (await conn.execute(select(runs).where(runs.c.business_day == business_day))).first()
    if run is None:
        return None
    line_rows = await conn.execute(
        select(lines_table)
        .where(lines_table.c.business_day == business_day)
        .order_by(lines_table.c.participant_code)
    )
    lines = tuple(
        PayoutLine(
            participant_code=r.participant_code,
            participant_name=r.participant_name,
            bank_name=r.bank_name,
            bank_account=r.bank_account,
            taps=r.taps,
            fares_fen=r.fares_fen,
            subsidy_fen=r.subsidy_fen,
            insured_fen=r.insured_fen,
            commission_bp=r.commission_bp,
            commission_fen=r.commission_fen,
            net_fen=r.net_fen,
        )
        for r in line_rows
    )
    claim_rows = await conn.execute(
        select(claims_table)
        .where(claims_table.c.business_day == business_day)
        .order_by(claims_table.c.account)
    )
    claims = tuple(Claim(r.account, r.kind, r.scheme, r.items, r.amount_fen) for r in claim_rows)
    return Settlement(business_day, run.created_at, run.message_id, lines, claims, True)


@dataclass(frozen=True, slots=True)
class RunSummary:
    business_day: date
    participants: int
    taps: int
    gross_fen: int

    @property
    def moved_money(self) -> bool:
        return bool(self.participants or self.taps or self.gross_fen)


async def runs_after(conn: AsyncConnection, day: date) -> list[RunSummary]:
    """Settlement runs of days after `day`, oldest first."""
    rows = await conn.execute(
        select(runs).where(runs.c.business_day > day).order_by(runs.c.business_day)
    )
    return [RunSummary(r.business_day, r.participants, r.taps, r.gross_fen) for r in rows]


async def delete_runs(conn: AsyncConnection, days: tuple[date, ...]) -> None:
    """Remove the runs of `days` with their claims and lines."""
    await conn.execute(delete(claims_table).where(claims_table.c.business_day.in_(days)))
    await conn.execute(delete(lines_table).where(lines_table.c.business_day.in_(days)))
    await conn.execute(delete(runs).where(runs.c.business_day.in_(days)))


async def move_records_back(conn: AsyncConnection, current: date, floor: date) -> int:
    """Records settling after max(current, floor) get the day they belong to: their business
    day, no earlier than `floor`, no later than max(current, floor). Returns how many moved."""
    latest = max(current, floor)
    moved = await conn.execute(
        update(cleared)
        .where(cleared.c.settlement_day > latest)
        .values(
            settlement_day=case(
                (cleared.c.business_day > current, latest),
                (cleared.c.business_day < floor, floor),
                else_=cleared.c.business_day,
            )
        )
    )
    # bills paid online while a future day stood settled settle on the latest open day
    bills = await conn.execute(
        update(bill_payments)
        .where(bill_payments.c.settlement_day > latest)
        .values(settlement_day=latest)
    )
    return int(moved.rowcount or 0) + int(bills.rowcount or 0)


@dataclass(frozen=True, slots=True)
class StatementRow:
    route_id: str | None
    terminal_id: str
    taps: int
    fares_fen: int
    subsidy_fen: int
    insured_fen: int


async def operator_statement(
    conn: AsyncConnection, participant_code: str, business_day: date
) -> list[StatementRow]:
    """What was cleared for a participant on a settlement day, per line and terminal."""
    rows = await conn.execute(
        select(
            cleared.c.route_id,
            cleared.c.terminal_id,
            func.count(),
            func.sum(cleared.c.amount_fen),
            func.sum(cleared.c.subsidy_fen),
            func.sum(cleared.c.insured_fen),
        )
        .where(
            cleared.c.participant_code == participant_code,
            cleared.c.settlement_day == business_day,
            cleared.c.kind != "load",
        )
        .group_by(cleared.c.route_id, cleared.c.terminal_id)
        .order_by(cleared.c.route_id, cleared.c.terminal_id)
    )
    return [
        StatementRow(r[0], r[1], int(r[2]), int(r[3] or 0), int(r[4] or 0), int(r[5] or 0))
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class SubsidyRow:
    participant_code: str
    route_id: str | None
    business_day: date
    scheme: str
    rides: int
    full_fare_fen: int
    charged_fen: int
    subsidy_fen: int


async def subsidy_report(
    conn: AsyncConnection, first_day: date, last_day: date
) -> list[SubsidyRow]:
    """Concession claims per operator, line and day (the fund's view of what it owes)."""
    rows = await conn.execute(
        select(
            cleared.c.participant_code,
            cleared.c.route_id,
            cleared.c.business_day,
            cleared.c.subsidy_scheme,
            func.count(),
            func.sum(cleared.c.full_fare_fen),
            func.sum(cleared.c.amount_fen),
            func.sum(cleared.c.subsidy_fen),
        )
        .where(
            cleared.c.business_day >= first_day,
            cleared.c.business_day <= last_day,
            cleared.c.subsidy_fen > 0,
        )
        .group_by(
            cleared.c.participant_code,
            cleared.c.route_id,
            cleared.c.business_day,
            cleared.c.subsidy_scheme,
        )
        .order_by(cleared.c.business_day, cleared.c.participant_code, cleared.c.route_id)
    )
    return [
        SubsidyRow(r[0], r[1], r[2], r[3], int(r[4]), int(r[5]), int(r[6]), int(r[7])) for r in rows
    ]
