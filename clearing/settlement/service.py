"""Settlement of a business day: each participant's gross, commission and net, the payout and
commission transfers, and the settlement instructions (CSV and pain.001).

One database transaction under the clearing lock: the run row (primary key = the business
day), its lines and claims, and the ledger transfers commit together. Settling a day that is
already settled changes nothing and returns what was settled. `settle_day` never commits a
caller's connection; `settle_and_write` (what the API, the command line and the beat task all
call) runs it in the transaction its caller hands over and writes the files after the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, case, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cardio.atomicfile import MODE_GROUP, write_bytes_atomic
from clearing import books
from clearing.api.errors import Conflict
from clearing.books import LEDGER_CNY, TransferCode
from clearing.calendar import BUSINESS_DAY_FIRST, BusinessCalendar, parse_cutoff
from clearing.engine import repository as engine_repo
from clearing.engine.models import ClearedTap
from clearing.records import TapKind
from clearing.registry.models import Participant
from clearing.settings import Settings, same_bank_account
from clearing.settlement.fees import day_totals
from clearing.settlement.files import (
    Debtor,
    PayoutLine,
    check_pain001,
    message_id,
    pain001_xml,
    settlement_csv,
)
from clearing.settlement.models import SettlementClaim, SettlementLine, SettlementRun
from ledger import CreateTransferResult, Transfer, transfer_id

cleared = cast(Table, ClearedTap.__table__)
runs = cast(Table, SettlementRun.__table__)
lines_table = cast(Table, SettlementLine.__table__)
claims_table = cast(Table, SettlementClaim.__table__)
participants = cast(Table, Participant.__table__)


class SettlementError(Conflict):
    code = "settlement_error"
    title = "The day cannot be settled"


class DayNotClosed(SettlementError):
    code = "business_day_not_closed"


class SettledOutOfOrder(SettlementError):
    code = "settled_out_of_order"


class DayInFuture(SettlementError):
    """A day after the current business day: nothing of it has happened yet, and settling it
    would mark every real day before it as late (they settle after the last settled day)."""

    code = "business_day_in_future"
    status = 422
    title = "The business day has not begun"


class ParticipantPaysIntoEscrow(SettlementError):
    """A participant whose payout account is the escrow account the payouts are paid from."""

    code = "participant_account_is_escrow"
    status = 422
    title = "A participant's bank account is the escrow account"


class FutureSettlementMovedMoney(SettlementError):
    code = "future_settlement_moved_money"
    title = "A settlement of a day that had not begun moved money"


@dataclass(frozen=True, slots=True)
class Claim:
    account: str
    kind: str  # insurer | subsidy
    scheme: str
    items: int
    amount_fen: int


@dataclass(frozen=True, slots=True)
class Settlement:
    business_day: date
    created_at: datetime
    message_id: str
    lines: tuple[PayoutLine, ...]
    claims: tuple[Claim, ...]
    already_settled: bool

    @property
    def gross_fen(self) -> int:
        return sum(line.gross_fen for line in self.lines)

    @property
    def commission_fen(self) -> int:
        return sum(line.commission_fen for line in self.lines)

    @property
    def net_fen(self) -> int:
        return sum(line.net_fen for line in self.lines)

    @property
    def taps(self) -> int:
        return sum(line.taps for line in self.lines)


async def settle_day(
    conn: AsyncConnection,
    ledger: Any,
    business_day: date,
    *,
    calendar: BusinessCalendar,
    now: datetime,
    actor: str,
    force: bool = False,
    escrow_account: str | None = None,
) -> Settlement:
    """Settle `business_day` (idempotent). `force` settles a day whose cut-off has not passed
    (finance staff closing early); records cleared later go to the next day. A participant
    whose bank account is `escrow_account` (the payer) stops the settlement: nothing moves."""
    await engine_repo.take_clearing_lock(conn)
    existing = await load_settlement(conn, business_day)
    if existing is not None:
        return existing
    current = calendar.business_day(now)
    if business_day > current:
        raise DayInFuture(
            f"business day {business_day} has not begun (the current business day is "
            f"{current}); --force closes only the current day early"
        )
    if not force and not calendar.is_closed(business_day, now):
        raise DayNotClosed(
            f"business day {business_day} closes at {calendar.day_end(business_day)} (UTC); "
            "settle it after its cut-off"
        )
    last = await engine_repo.last_settled_day(conn)
    if last is not None and last > current:
        raise SettledOutOfOrder(
            f"{last}, a day that has not begun, is settled (before such days were refused), so "
            f"every earlier day is blocked: undo it with `onecard settle --undo-future`"
        )
    if last is not None and last > business_day:
        raise SettledOutOfOrder(
            f"{last} is already settled; a later record of {business_day} settles with the "
            "next open day"
        )
    totals = await _day_totals(conn, business_day)
    if escrow_account is not None:
        _refuse_escrow_payees(totals, escrow_account)
    lines: list[PayoutLine] = []
    transfers: list[Transfer] = []
    ids: dict[str, tuple[int | None, int | None]] = {}
    if totals:  # a day with nothing cleared moves no money (and needs no books opened yet)
        await books.ensure_accounts(
            ledger,
            [books.payable(code) for code in totals]
            + [books.REVENUE_COMMISSION, books.BANK_ESCROW],
            conn=conn,
        )
    for code, row in sorted(totals.items()):
        totals_row = day_totals(
            code,
            taps=row["taps"],
            fares_fen=row["fares_fen"],
            subsidy_fen=row["subsidy_fen"],
            insured_fen=row["insured_fen"],
            commission_bp=row["commission_bp"],
        )
        line = PayoutLine(
            participant_code=code,
            participant_name=row["name"],
            bank_name=row["bank_name"],
            bank_account=row["bank_account"],
            taps=totals_row.taps,
            fares_fen=totals_row.fares_fen,
            subsidy_fen=totals_row.subsidy_fen,
            insured_fen=totals_row.insured_fen,
            commission_bp=totals_row.commission_bp,
            commission_fen=totals_row.commission_fen,
            net_fen=totals_row.net_fen,
        )
        lines.append(line)
        commission_id = payout_id = None
        payable = books.account_of(books.payable(code)).id
        if line.commission_fen:
            commission_id = transfer_id(f"settle:{business_day}:{code}:commission")
            transfers.append(
                Transfer(
                    id=commission_id,
                    debit_account_id=payable,
                    credit_account_id=books.account_of(books.REVENUE_COMMISSION).id,
                    amount=line.commission_fen,
                    ledger=LEDGER_CNY,
                    code=TransferCode.COMMISSION,
                )
            )
        if line.net_fen:
            payout_id = transfer_id(f"settle:{business_day}:{code}:payout")
            transfers.append(
                Transfer(
                    id=payout_id,
                    debit_account_id=payable,
                    credit_account_id=books.account_of(books.BANK_ESCROW).id,
                    amount=line.net_fen,
                    ledger=LEDGER_CNY,
                    code=TransferCode.SETTLEMENT_PAYOUT,
                )
            )
        ids[code] = (commission_id, payout_id)
    if transfers:
        results = await ledger.create_transfers(transfers, conn=conn)
        refused = [
            (t, r)
            for t, r in zip(transfers, results, strict=True)
            if r not in (CreateTransferResult.OK, CreateTransferResult.EXISTS)
        ]
        if refused:
            raise SettlementError(
                f"the ledger refused {len(refused)} settlement transfers "
                f"(first: {refused[0][1]}); nothing was settled"
            )
    claims = await _day_claims(conn, business_day)
    msg = message_id(business_day)
    await conn.execute(
        insert(runs).values(
            business_day=business_day,
            state="posted",
            cutoff_at=calendar.day_end(business_day),
            actor=actor,
            created_at=now,
            message_id=msg,
            participants=len(lines),
            taps=sum(line.taps for line in lines),
            gross_fen=sum(line.gross_fen for line in lines),
            commission_fen=sum(line.commission_fen for line in lines),
            net_fen=sum(line.net_fen for line in lines),
        )
    )
    if lines:
        await conn.execute(
            insert(lines_table),
            [
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
                    "commission_transfer_id": _uuid(ids[line.participant_code][0]),
                    "payout_transfer_id": _uuid(ids[line.participant_code][1]),
                }
                for line in lines
            ],
        )
    if claims:
        await conn.execute(
            insert(claims_table),
            [
                {
                    "business_day": business_day,
                    "account": claim.account,
                    "kind": claim.kind,
                    "scheme": claim.scheme,
                    "items": claim.items,
                    "amount_fen": claim.amount_fen,
                }
                for claim in claims
            ],
        )
    return Settlement(business_day, now, msg, tuple(lines), tuple(claims), False)


def _refuse_escrow_payees(totals: dict[str, dict[str, Any]], escrow_account: str) -> None:
    into_escrow = sorted(
        code
        for code, row in totals.items()
        if same_bank_account(row["bank_account"], escrow_account)
    )
    if into_escrow:
        raise ParticipantPaysIntoEscrow(
            f"participant(s) {', '.join(into_escrow)} would be paid into the escrow account "
            f"{escrow_account} the payouts are paid from; give them their own account "
            "(PATCH /v1/participants/<code>) or set ONECARD_ESCROW_ACCOUNT; nothing was settled"
        )


@dataclass(frozen=True, slots=True)
class FutureUndone:
    days: tuple[date, ...]  # settlements undone (days that had not begun)
    records_moved: int  # cleared records given back to the days they belong to


async def undo_future_settlements(
    conn: AsyncConnection, *, calendar: BusinessCalendar, now: datetime
) -> FutureUndone:
    """Undo settlements of days that had not begun, made before settle_day refused them.

    Such a run is the latest settled day, so every real day was refused as out of order and
    every record cleared since went to the day after it (operators unpaid). A run that moved no
    money is removed and those records get back the day they belong to (their business day, no
    earlier than the day after the last real settlement, no later than today). A run that paid
    someone is refused: its transfers and bank file need a person.
    """
    await engine_repo.take_clearing_lock(conn)
    current = calendar.business_day(now)
    future = (
        await conn.execute(
            select(runs).where(runs.c.business_day > current).order_by(runs.c.business_day)
        )
    ).all()
    if not future:
        return FutureUndone((), 0)
    paid = [r.business_day for r in future if r.participants or r.taps or r.gross_fen]
    if paid:
        raise FutureSettlementMovedMoney(
            f"the settlement(s) of {', '.join(map(str, paid))} (days that have not begun) moved "
            "money: reverse their payout transfers and recall their bank files by hand; "
            "nothing was changed"
        )
    days = tuple(r.business_day for r in future)
    await conn.execute(delete(claims_table).where(claims_table.c.business_day.in_(days)))
    await conn.execute(delete(lines_table).where(lines_table.c.business_day.in_(days)))
    await conn.execute(delete(runs).where(runs.c.business_day.in_(days)))
    last = await engine_repo.last_settled_day(conn)
    floor = last + timedelta(days=1) if last is not None else BUSINESS_DAY_FIRST
    moved = await conn.execute(
        update(cleared)
        .where(cleared.c.settlement_day > max(current, floor))
        .values(
            settlement_day=case(
                (cleared.c.business_day > current, max(current, floor)),
                (cleared.c.business_day < floor, floor),
                else_=cleared.c.business_day,
            )
        )
    )
    return FutureUndone(days, int(moved.rowcount or 0))


def remove_files(days: tuple[date, ...], out_dir: Path) -> list[Path]:
    """Remove the instruction files of undone days (a zero CSV and claims file each)."""
    removed = []
    for day in days:
        stem = f"settlement-{day.isoformat()}"
        for name in (f"{stem}.csv", f"{stem}.pain001.xml", f"{stem}-claims.csv"):
            path = out_dir / name
            if path.exists():
                path.unlink()
                removed.append(path)
    return removed


def _uuid(value: int | None) -> uuid.UUID | None:
    return uuid.UUID(int=value) if value else None


async def _day_totals(conn: AsyncConnection, business_day: date) -> dict[str, dict[str, Any]]:
    """Per participant: what its cleared records of the day earned (loads earn nothing)."""
    rows = await conn.execute(
        select(
            cleared.c.participant_code,
            func.count(),
            func.sum(cleared.c.amount_fen),
            func.sum(cleared.c.subsidy_fen),
            func.sum(cleared.c.insured_fen),
        )
        .where(cleared.c.settlement_day == business_day, cleared.c.kind != TapKind.LOAD.value)
        .group_by(cleared.c.participant_code)
    )
    sums = {r[0]: (int(r[1]), int(r[2] or 0), int(r[3] or 0), int(r[4] or 0)) for r in rows}
    if not sums:
        return {}
    found = await conn.execute(
        select(
            participants.c.code,
            participants.c.name,
            participants.c.bank_name,
            participants.c.bank_account,
            participants.c.commission_bp,
        ).where(participants.c.code.in_(sorted(sums)))
    )
    out: dict[str, dict[str, Any]] = {}
    for code, name, bank_name, bank_account, bp in found:
        taps, fares, subsidy, insured = sums[code]
        out[code] = {
            "name": name,
            "bank_name": bank_name,
            "bank_account": bank_account,
            "commission_bp": int(bp),
            "taps": taps,
            "fares_fen": fares,
            "subsidy_fen": subsidy,
            "insured_fen": insured,
        }
    missing = set(sums) - set(out)
    if missing:
        raise SettlementError(f"participants not in the registry: {sorted(missing)}")
    return out


async def _day_claims(conn: AsyncConnection, business_day: date) -> list[Claim]:
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


async def load_settlement(conn: AsyncConnection, business_day: date) -> Settlement | None:
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
class SettlementFiles:
    csv: Path
    xml: Path | None  # None when nobody is paid (a pain.001 needs one transfer at least)
    claims: Path


def write_files(settlement: Settlement, out_dir: Path, debtor: Debtor) -> SettlementFiles:
    """Write the day's files (deterministic from the stored settlement: rewriting is harmless)."""
    _refuse_escrow_payees(
        {line.participant_code: {"bank_account": line.bank_account} for line in settlement.lines},
        debtor.account,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"settlement-{settlement.business_day.isoformat()}"
    csv_path = out_dir / f"{stem}.csv"
    write_bytes_atomic(
        csv_path,
        settlement_csv(settlement.business_day, settlement.lines).encode(),
        mode=MODE_GROUP,
    )
    xml_path: Path | None = None
    if any(line.net_fen > 0 for line in settlement.lines):
        xml = pain001_xml(
            settlement.business_day,
            settlement.created_at,
            settlement.business_day + timedelta(days=1),
            debtor,
            settlement.lines,
        )
        problems = check_pain001(xml)
        if problems:
            raise SettlementError(f"pain.001 failed its structural check: {problems}")
        xml_path = out_dir / f"{stem}.pain001.xml"
        write_bytes_atomic(xml_path, xml, mode=MODE_GROUP)
    claims_path = out_dir / f"{stem}-claims.csv"
    text = "business_day,account,kind,scheme,items,amount_fen\n" + "".join(
        f"{settlement.business_day},{c.account},{c.kind},{c.scheme},{c.items},{c.amount_fen}\n"
        for c in settlement.claims
    )
    write_bytes_atomic(claims_path, text.encode(), mode=MODE_GROUP)
    return SettlementFiles(csv_path, xml_path, claims_path)


def calendar_of(settings: Settings) -> BusinessCalendar:
    return BusinessCalendar(
        ZoneInfo(settings.business_time_zone), parse_cutoff(settings.settlement_cutoff)
    )


def debtor_of(settings: Settings) -> Debtor:
    return Debtor(settings.escrow_name, settings.escrow_account, settings.escrow_bank)


def settlement_dir(settings: Settings) -> Path:
    return settings.settlement_dir or settings.data_dir / "settlement"


async def settle_and_write(
    transaction: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
    ledger: Any,
    settings: Settings,
    business_day: date | None,
    *,
    now: datetime,
    actor: str,
    force: bool = False,
) -> tuple[Settlement, SettlementFiles]:
    """Settle a day (default: the last closed one) in the transaction `transaction()` opens and
    commits on exit, then write its instruction files. The one way every caller settles, so
    the API, `onecard settle` and the beat task leave the same books and the same files."""
    calendar = calendar_of(settings)
    day = business_day or calendar.last_closed_day(now)
    async with transaction() as conn:
        settlement = await settle_day(
            conn,
            ledger,
            day,
            calendar=calendar,
            now=now,
            actor=actor,
            force=force,
            escrow_account=settings.escrow_account,
        )
    files = write_files(settlement, settlement_dir(settings), debtor_of(settings))
    return settlement, files


# -- statements and reports ------------------------------------------------------------------


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
            cleared.c.kind != TapKind.LOAD.value,
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
