"""Settlement of a business day: each participant's gross, commission and net, the payout and
commission transfers, and the settlement instructions (CSV and pain.001).

One database transaction under the clearing lock: the run row (primary key = the business
day), its lines and claims, and the ledger transfers commit together. Settling a day that is
already settled changes nothing and returns what was settled. `settle_day` never commits a
caller's connection; `settle_and_write` (what the API, the command line and the beat task all
call) runs it in the transaction its caller hands over and writes the files after the commit.
The flow only: the queries are in `repository`, the payout arithmetic in `payout`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from cardio.atomicfile import MODE_GROUP, write_bytes_atomic
from clearing import books
from clearing.calendar import BUSINESS_DAY_FIRST, BusinessCalendar, parse_cutoff
from clearing.engine import repository as engine_repo
from clearing.errors import Conflict
from clearing.settings import Settings, same_bank_account
from clearing.settlement import payout, repository
from clearing.settlement.files import (
    Debtor,
    PayoutLine,
    check_pain001,
    message_id,
    pain001_xml,
    settlement_csv,
)
from clearing.settlement.payout import Claim, Settlement, TransferIds
from clearing.settlement.repository import (
    StatementRow,
    SubsidyRow,
    load_settlement,
    operator_statement,
    subsidy_report,
)
from ledger import CreateTransferResult
from ledger.port import LedgerPort

__all__ = [
    "Claim",
    "DayInFuture",
    "DayNotClosed",
    "FutureSettlementMovedMoney",
    "FutureUndone",
    "ParticipantPaysIntoEscrow",
    "SettledOutOfOrder",
    "Settlement",
    "SettlementError",
    "SettlementFiles",
    "StatementRow",
    "SubsidyRow",
    "calendar_of",
    "debtor_of",
    "load_settlement",
    "operator_statement",
    "remove_files",
    "settle_and_write",
    "settle_day",
    "settlement_dir",
    "subsidy_report",
    "undo_future_settlements",
    "write_files",
]


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


async def settle_day(
    conn: AsyncConnection,
    ledger: LedgerPort,
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
    await _refuse_unsettleable_day(conn, business_day, calendar=calendar, now=now, force=force)
    lines = await _day_lines(conn, business_day)
    if escrow_account is not None:
        _refuse_escrow_payees(
            {line.participant_code: line.bank_account for line in lines}, escrow_account
        )
    ids = await _post_transfers(conn, ledger, business_day, lines)
    claims = await repository.day_claims(conn, business_day)
    msg = message_id(business_day)
    header = repository.RunHeader(
        business_day, calendar.day_end(business_day), actor, now, msg, payout.run_totals(lines)
    )
    await repository.insert_run(conn, header)
    await repository.insert_lines(conn, business_day, lines, ids)
    await repository.insert_claims(conn, business_day, claims)
    return Settlement(business_day, now, msg, lines, tuple(claims), False)


async def _refuse_unsettleable_day(
    conn: AsyncConnection,
    business_day: date,
    *,
    calendar: BusinessCalendar,
    now: datetime,
    force: bool,
) -> None:
    """A day may settle once it has begun, its cut-off has passed (or `force`), and no later
    day is settled (a late record of it goes to the next open day instead)."""
    current = calendar.business_day(now)
    if business_day > current:
        raise DayInFuture(
            f"business day {business_day} has not begun (the current business day is "
            f"{current}); --force closes only the current day early"
        )
    if not force and not calendar.is_closed(business_day, now):
        end = calendar.day_end(business_day)
        local = end.astimezone(calendar.time_zone)
        raise DayNotClosed(
            f"business day {business_day} closes at {local:%Y-%m-%d %H:%M} "
            f"{calendar.time_zone.key} ({end.astimezone(UTC):%H:%M} UTC); settle it after its "
            "cut-off, or close it early with --force"
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


async def _day_lines(conn: AsyncConnection, business_day: date) -> tuple[PayoutLine, ...]:
    """The payout line of every participant that earned something on the day."""
    earnings = await repository.day_earnings(conn, business_day)
    if not earnings:
        return ()
    payees = await repository.payees(conn, earnings)
    missing = payout.missing_payees(earnings, payees)
    if missing:
        raise SettlementError(f"participants not in the registry: {missing}")
    return payout.payout_lines(earnings, payees)


async def _post_transfers(
    conn: AsyncConnection, ledger: LedgerPort, business_day: date, lines: tuple[PayoutLine, ...]
) -> dict[str, TransferIds]:
    """Post the day's commission and payout transfers; all of them or none."""
    if not lines:  # a day with nothing cleared moves no money (and needs no books opened yet)
        return {}
    codes = [line.participant_code for line in lines]
    await books.ensure_accounts(
        ledger,
        [books.payable(code) for code in codes] + [books.REVENUE_COMMISSION, books.BANK_ESCROW],
        conn=conn,
    )
    accounts = payout.PayoutAccounts(
        payable={code: books.account_of(books.payable(code)).id for code in codes},
        commission=books.account_of(books.REVENUE_COMMISSION).id,
        escrow=books.account_of(books.BANK_ESCROW).id,
    )
    transfers, ids = payout.payout_transfers(business_day, lines, accounts)
    if transfers:
        results = await ledger.create_transfers(list(transfers), conn=conn)
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
    return ids


def _refuse_escrow_payees(bank_accounts: Mapping[str, str], escrow_account: str) -> None:
    """`bank_accounts`: participant code -> the account it is paid into."""
    into_escrow = sorted(
        code
        for code, account in bank_accounts.items()
        if same_bank_account(account, escrow_account)
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
    future = await repository.runs_after(conn, current)
    if not future:
        return FutureUndone((), 0)
    paid = [r.business_day for r in future if r.moved_money]
    if paid:
        raise FutureSettlementMovedMoney(
            f"the settlement(s) of {', '.join(map(str, paid))} (days that have not begun) moved "
            "money: reverse their payout transfers and recall their bank files by hand; "
            "nothing was changed"
        )
    days = tuple(r.business_day for r in future)
    await repository.delete_runs(conn, days)
    last = await engine_repo.last_settled_day(conn)
    floor = last + timedelta(days=1) if last is not None else BUSINESS_DAY_FIRST
    moved = await repository.move_records_back(conn, current, floor)
    return FutureUndone(days, moved)


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


@dataclass(frozen=True, slots=True)
class SettlementFiles:
    csv: Path
    xml: Path | None  # None when nobody is paid (a pain.001 needs one transfer at least)
    claims: Path


def write_files(settlement: Settlement, out_dir: Path, debtor: Debtor) -> SettlementFiles:
    """Write the day's files (deterministic from the stored settlement: rewriting is harmless)."""
    _refuse_escrow_payees(
        {line.participant_code: line.bank_account for line in settlement.lines}, debtor.account
    )
    # No mkdir here: the atomic write makes the folder, and names a file in its way.
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
    ledger: LedgerPort,
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
