"""Check 8 on SQLite and PostgreSQL: the bank's closing balance of a statement day against the
ledger's bank:escrow at the end of that day. Equal: no break. The bank holding money the books
lack: one bank_balance_mismatch break with both balances in fen, found again (not twice) by a
re-run, closed by the run once the books have it."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from clearing import books
from clearing.books.codes import TransferCode
from clearing.settings import ESCROW_ACCOUNT_DEFAULT
from ledger import Transfer, transfer_id
from reconciliation.bank.camt053_writer import camt053_xml
from reconciliation.bank.statement import BankEntry, BankStatement, Direction, EntryDetail
from reconciliation.checks.base import BreakKind
from tests.clearing.test_engine import World
from tests.reconciliation.conftest import CALENDAR, reconcile
from tests.reconciliation.test_bank_import import (
    FUND_ACCOUNT,
    add_senior_fund,
    credit,
    import_xml,
)
from tests.reconciliation.test_stripe_billers_day import open_breaks


async def bank_cash(world: World, n: int, fen: int) -> None:
    """Counter takings banked into the escrow account, as the books record it."""
    async with world.ledger.transaction() as conn:
        await books.ensure_accounts(world.ledger, [books.BANK_CASH, books.BANK_ESCROW], conn=conn)
        [posted] = await world.ledger.create_transfers(
            [
                Transfer(
                    id=transfer_id(f"test:cash-banked:{n}"),
                    debit_account_id=books.account_of(books.BANK_ESCROW).id,
                    credit_account_id=books.account_of(books.BANK_CASH).id,
                    amount=fen,
                    ledger=books.LEDGER_CNY,
                    code=TransferCode.CASH_BANKED,
                )
            ],
            conn=conn,
        )
        assert posted.ok


def statement(statement_id: str, ref: str, fen: int, day: date, closing_fen: int) -> bytes:
    detail = EntryDetail(None, None, None, None, "cash banked", "onecard counters", None)
    entry = BankEntry(1, ref, fen, Direction.CREDIT, day, day, False, None, None, (detail,))
    return camt053_xml(
        [
            BankStatement(
                f"MSG-{statement_id}",
                statement_id,
                ESCROW_ACCOUNT_DEFAULT,
                "CNY",
                datetime.now(CALENDAR.time_zone),
                None,
                closing_fen,
                (entry,),
                (),
                0,
            )  # fmt: skip
        ]
    )


async def balance_breaks(world: World) -> list[dict[str, Any]]:
    return [b for b in await open_breaks(world) if b["kind"] == BreakKind.BANK_BALANCE_MISMATCH]


async def test_the_banks_closing_balance_meets_the_ledgers_escrow_or_is_one_break(
    world: World,
) -> None:
    day = datetime.now(CALENDAR.time_zone).date()  # the ledger books at its own clock: today
    await bank_cash(world, 1, 10_000)
    books_fen = await world.balance(books.BANK_ESCROW)
    await import_xml(world, statement("S-1", "B-1", 10_000, day, books_fen))
    agreed = await reconcile(world, day)
    escrow = {c.name: c for c in agreed.checks}["escrow_balance"]
    assert (escrow.matched, escrow.total) == (1, 1)
    assert await balance_breaks(world) == []

    # The bank's statement of the same day, sent again later, credits 2,500 the books lack.
    await import_xml(world, statement("S-2", "B-2", 2_500, day, books_fen + 2_500))
    await reconcile(world, day)
    [found] = await balance_breaks(world)
    assert found["key"] == f"balance:{ESCROW_ACCOUNT_DEFAULT}:{day}"
    assert found["amount_fen"] == 2_500
    assert found["details"]["bank_closing_fen"] == books_fen + 2_500
    assert found["details"]["ledger_fen"] == books_fen
    again = await reconcile(world, day)
    assert again.new == 0 and len(await balance_breaks(world)) == 1

    await bank_cash(world, 2, 2_500)  # the books catch up
    closing = await reconcile(world, day)
    assert await balance_breaks(world) == []
    assert closing.closed >= 1


async def test_a_funds_payment_booked_after_its_day_is_in_transit_not_a_break(
    world: World,
) -> None:
    await add_senior_fund(world)
    yesterday = datetime.now(CALENDAR.time_zone).date() - timedelta(days=1)
    # The books begin today (the world was built now): bank:escrow held nothing at the end of
    # yesterday. The bank credited the fund's 200 yesterday; clearing books it at import, today.
    await import_xml(
        world,
        camt053_xml(
            [
                BankStatement(
                    "MSG-F",
                    "S-F",
                    ESCROW_ACCOUNT_DEFAULT,
                    "CNY",
                    None,
                    None,
                    200,
                    (credit("F1", 200, yesterday, FUND_ACCOUNT),),
                    (),
                    0,
                )  # fmt: skip
            ]
        ),
    )
    run = await reconcile(world, yesterday + timedelta(days=1))
    escrow = {c.name: c for c in run.checks}["escrow_balance"]
    assert (escrow.matched, escrow.total) == (1, 1)
    assert await balance_breaks(world) == []
