"""Importing the escrow account's camt.053 end to end, on SQLite and PostgreSQL: a statement
imported twice is stored once; a fund's payment is booked once through clearing (the transfer is
in the ledger, the claim on the fund goes down); a settled day whose statement misses one
operator's payout is exactly one break, closed by the re-run once the next statement shows it;
a fund's claim unpaid past its terms ages into a break, closed when the rest is paid."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from clearing import books
from clearing.books.codes import TransferCode
from clearing.cli.bank_cmd import ImportedStatement, import_statements, parse_for_escrow
from clearing.cli.bank_cmd import sample_for_day as sample_statement_xml
from clearing.funds.receipts import receipt_transfer_id
from clearing.registry import service as registry_service
from clearing.registry.schemas import ParticipantCreate, TerminalCreate
from clearing.settings import ESCROW_ACCOUNT_DEFAULT
from clearing.settlement.references import end_to_end_id
from clearing.settlement.service import settle_day
from ledger.reader import LedgerReader
from reconciliation import repository as recon_repository
from reconciliation.bank.camt053_writer import camt053_xml
from reconciliation.bank.models import entries, fund_receipts, statements
from reconciliation.bank.service import content_sha256
from reconciliation.bank.statement import (
    BankEntry,
    BankStatement,
    Direction,
    EntryDetail,
    StatementConflict,
    StatementWrongAccount,
)
from reconciliation.checks.base import BreakKind
from tests.clearing.test_engine import World
from tests.reconciliation.conftest import CALENDAR, past_day, reconcile

ADULT, SENIOR = "3100000000000000", "3100000000000002"
BUS_2_TERMINAL = "0000030000B1"
FUND_ACCOUNT = "6222 0000 0000 9001"  # the subsidy fund's, as the registry holds it
BANK_KINDS = {k.value for k in (*BreakKind,) if k.value.startswith(("bank_", "fund_"))}


def debit(ref: str, fen: int, day: date, e2e: str) -> BankEntry:
    detail = EntryDetail(None, e2e, None, None, None, None, None)
    return BankEntry(0, ref, fen, Direction.DEBIT, day, day, False, None, None, (detail,))


def credit(ref: str, fen: int, day: date, payer_account: str, note: str | None = None) -> BankEntry:
    detail = EntryDetail(None, None, None, None, note, "City Senior Fund", payer_account)
    return BankEntry(0, ref, fen, Direction.CREDIT, day, day, False, None, None, (detail,))


def statement_xml(statement_id: str, *lines: BankEntry) -> bytes:
    numbered = tuple(
        BankEntry(n, *(getattr(e, f) for f in BankEntry.__slots__[1:]))  # type: ignore[arg-type]
        for n, e in enumerate(lines, start=1)
    )
    created = datetime(2026, 1, 1, tzinfo=UTC)
    statement = BankStatement(
        f"MSG-{statement_id}", statement_id, ESCROW_ACCOUNT_DEFAULT, "CNY", created, None, None,
        numbered, (), 0,
    )  # fmt: skip
    return camt053_xml([statement])


async def import_xml(world: World, xml: bytes) -> list[ImportedStatement]:
    parsed = parse_for_escrow(xml, ESCROW_ACCOUNT_DEFAULT)
    async with world.ledger.transaction() as conn:
        return await import_statements(
            conn,
            world.ledger,
            parsed,
            sha256=content_sha256(xml),
            actor="test",
            now=datetime.now(UTC),
        )


async def settle(world: World, day: date) -> dict[str, int]:
    async with world.ledger.transaction() as conn:
        settled = await settle_day(
            conn, world.ledger, day, calendar=CALENDAR, now=datetime.now(UTC), actor="test"
        )
    return {line.participant_code: line.net_fen for line in settled.lines}


async def add_senior_fund(world: World) -> None:
    async with world.ledger.transaction() as conn:
        session = AsyncSession(bind=conn)
        await registry_service.create_participant(
            session,
            ParticipantCreate(
                code="fund-senior",
                name="City Senior Fund",
                kind="subsidy_fund",
                commission_bp=0,
                bank_account=FUND_ACCOUNT,
                bank_name="Bank of the City",
                scheme="senior",
            ),
            escrow_account=ESCROW_ACCOUNT_DEFAULT,
        )
        await session.flush()
        await session.close()


async def add_bus_2(world: World) -> None:
    async with world.ledger.transaction() as conn:
        session = AsyncSession(bind=conn)
        await registry_service.create_participant(
            session,
            ParticipantCreate(
                code="bus-2",
                name="Bus Two",
                kind="bus_operator",
                commission_bp=20,
                bank_account="6222000000000202",
                bank_name="Bank of the City",
            ),
            escrow_account=ESCROW_ACCOUNT_DEFAULT,
        )
        await registry_service.register_terminal(
            session,
            TerminalCreate(
                terminal_id=BUS_2_TERMINAL,
                participant="bus-2",
                kind="bus",
                line="L2",
                public_key="14" * 32,
            ),
        )
        await session.flush()
        await session.close()


async def count(world: World, table: Any) -> int:
    async with world.ledger.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def open_bank_breaks(world: World) -> list[dict[str, Any]]:
    async with world.ledger.engine.connect() as conn:
        rows = await recon_repository.list_breaks(conn, statuses=["open", "assigned", "explained"])
    return [r for r in rows if r["kind"] in BANK_KINDS]


async def test_a_statement_imported_twice_is_stored_once(world: World) -> None:
    day = past_day(3)
    xml = statement_xml("S1", debit("B1", 500, day, "X1"), debit("B2", 700, day, "X2"))
    [first] = await import_xml(world, xml)
    [again] = await import_xml(world, xml)
    assert (first.stored.already_imported, len(first.stored.new_entries)) == (False, 2)
    assert (again.stored.already_imported, again.stored.new_entries) == (True, ())
    assert (await count(world, statements), await count(world, entries)) == (1, 2)
    # the next statement repeats one entry: it is kept once
    [repeat] = await import_xml(world, statement_xml("S2", debit("B2", 700, day, "X2")))
    assert (repeat.stored.repeated, await count(world, entries)) == (1, 2)
    changed = statement_xml("S1", debit("B1", 501, day, "X1"))
    with pytest.raises(StatementConflict):
        await import_xml(world, changed)


async def test_a_statement_of_another_account_is_refused_whole(world: World) -> None:
    other = statement_xml("S1").replace(ESCROW_ACCOUNT_DEFAULT.encode(), b"6222999999999999999")
    with pytest.raises(StatementWrongAccount, match="6222999999999999999"):
        parse_for_escrow(other, ESCROW_ACCOUNT_DEFAULT)


async def test_a_funds_payment_is_booked_once_and_lowers_its_claim(world: World) -> None:
    await add_senior_fund(world)
    await world.upload([world.ride(SENIOR, 0, full_fare_fen=200)])
    await world.engine.clear_pending()
    assert await world.balance(books.subsidy("senior")) == 200
    escrow_before = await world.balance(books.BANK_ESCROW)
    xml = statement_xml(
        "S1",
        credit("F1", 200, past_day(1), "622200000000 9001"),  # the fund, spaced otherwise
        credit("C1", 900, past_day(1), "6222111111111111"),  # someone else: not booked
    )
    [imported] = await import_xml(world, xml)
    [booked] = imported.booked
    assert (booked.payer.code, booked.bank_ref, booked.amount_fen, booked.new) == (
        "fund-senior", "F1", 200, True,
    )  # fmt: skip
    await import_xml(world, xml)  # again: nothing moves
    assert await world.balance(books.subsidy("senior")) == 0
    assert await world.balance(books.BANK_ESCROW) == escrow_before + 200
    [transfer] = await LedgerReader(world.ledger.engine).lookup_transfers(
        [receipt_transfer_id("F1")]
    )
    assert (transfer.amount, transfer.code) == (200, TransferCode.SUBSIDY_RECEIPT)
    assert transfer.debit_account_id == books.account_of(books.BANK_ESCROW).id
    assert await count(world, fund_receipts) == 1


async def test_a_missing_bank_credit_for_one_operator_is_one_break_until_it_arrives(
    world: World,
) -> None:
    await add_bus_2(world)
    day = past_day(12)
    at = CALENDAR.day_start(day) + timedelta(hours=3)
    await world.upload([world.ride(ADULT, 400, at=at)])
    await world.upload(
        [world.ride(ADULT, 900, at=at + timedelta(minutes=5), terminal_id=BUS_2_TERMINAL)],
        terminal_id=BUS_2_TERMINAL,
    )
    await world.engine.clear_pending()
    nets = await settle(world, day)
    assert set(nets) == {"bus-1", "bus-2"}
    paid_on = day + timedelta(days=1)
    bus = debit("B1", nets["bus-1"], paid_on, end_to_end_id(day, "bus-1"))
    await import_xml(world, statement_xml("S1", bus))
    run_day = day + timedelta(days=8)

    first = await reconcile(world, run_day)
    [missing] = await open_bank_breaks(world)
    assert (missing["kind"], missing["counterpart"], missing["amount_fen"]) == (
        BreakKind.BANK_CREDIT_MISSING, "bus-2", nets["bus-2"],
    )  # fmt: skip
    bank = {c.name: c for c in first.checks}["bank"]
    assert (bank.matched, bank.total) == (2, 3)  # bus-1's payout and its line; not bus-2's

    again = await reconcile(world, run_day)
    assert [r["id"] for r in await open_bank_breaks(world)] == [missing["id"]]
    assert again.new == 0

    late = BankEntry(
        0,
        "B2",
        nets["bus-2"],
        Direction.DEBIT,
        paid_on,
        paid_on + timedelta(days=1),
        False,
        None,
        None,
        (),
    )
    await import_xml(world, statement_xml("S2", late))  # no reference: amount and date match
    closing = await reconcile(world, run_day)
    assert await open_bank_breaks(world) == []
    assert closing.closed >= 1


async def test_a_funds_claim_unpaid_past_its_terms_is_a_break_until_paid(world: World) -> None:
    await add_senior_fund(world)
    day = past_day(45)
    at = CALENDAR.day_start(day) + timedelta(hours=3)
    await world.upload([world.ride(SENIOR, 0, full_fare_fen=300, at=at)])
    await world.engine.clear_pending()
    nets = await settle(world, day)
    paid_on = day + timedelta(days=1)
    payout = debit("B1", nets["bus-1"], paid_on, end_to_end_id(day, "bus-1"))
    partial = credit("F1", 200, day + timedelta(days=20), FUND_ACCOUNT, f"claim {day}")
    await import_xml(world, statement_xml("S1", payout, partial))

    await reconcile(world, past_day(1))
    [overdue] = await open_bank_breaks(world)
    assert (overdue["kind"], overdue["counterpart"], overdue["amount_fen"]) == (
        BreakKind.FUND_CLAIM_OVERDUE, "subsidy:senior", 100,
    )  # fmt: skip
    assert await world.balance(books.subsidy("senior")) == 100

    rest = credit("F2", 100, past_day(1), FUND_ACCOUNT)
    await import_xml(world, statement_xml("S2", rest))
    await reconcile(world, past_day(1))
    assert await open_bank_breaks(world) == []
    assert await world.balance(books.subsidy("senior")) == 0


async def test_the_statement_a_bank_sends_for_a_settled_day_leaves_no_break(world: World) -> None:
    await add_senior_fund(world)
    await add_bus_2(world)
    day = past_day(40)
    at = CALENDAR.day_start(day) + timedelta(hours=3)
    await world.upload(
        [world.ride(SENIOR, 0, full_fare_fen=300, at=at), world.ride(ADULT, 250, at=at)]
    )
    await world.upload(
        [world.ride(ADULT, 700, at=at + timedelta(minutes=9), terminal_id=BUS_2_TERMINAL)],
        terminal_id=BUS_2_TERMINAL,
    )
    await world.engine.clear_pending()
    nets = await settle(world, day)
    assert len(nets) == 2
    xml = await sample_statement_xml(world.url, day, ESCROW_ACCOUNT_DEFAULT)
    [imported] = await import_xml(world, xml)
    assert [b.amount_fen for b in imported.booked] == [300]
    summary = await reconcile(world, past_day(1))
    assert await open_bank_breaks(world) == []
    checks = {c.name: c for c in summary.checks}
    assert checks["bank"].matched == checks["bank"].total == 2 + 2  # two payouts, two details
    assert checks["funds"].matched == checks["funds"].total == 2  # the claim and its payment
    assert await world.balance(books.subsidy("senior")) == 0
