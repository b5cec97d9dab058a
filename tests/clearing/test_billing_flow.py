"""The bill flow end to end against the real biller service (a separate process): a bill paid
online posts once to payable:<biller> and keeps a receipt; the biller down for a while is asked
again until it acknowledges, and exactly one confirmation counts; a bill paid at the counter
by card moves the card money once, through the card's own cleared tap; settlement pays the
biller its bills less commission like any operator.

Runs on both backends (the clearing engine's world of tests/clearing/test_engine.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from clearing import books
from clearing.auth.models import Role
from clearing.auth.service import Principal
from clearing.billing import confirmations, counter, service, tasks
from clearing.billing.adapter import Confirmation, HttpBillerAdapter
from clearing.billing.models import BillConfirmation, BillPayment, ConfirmationState
from clearing.billing.rules import BillAlreadyPaid
from clearing.books import TransferCode
from clearing.calendar import BusinessCalendar
from clearing.cards import service as cards_service
from clearing.celery_app import app as celery_app
from clearing.registry import service as registry_service
from clearing.registry.schemas import ParticipantCreate, TerminalCreate
from clearing.settings import ESCROW_ACCOUNT_DEFAULT, get_settings
from clearing.settlement.service import settle_day
from ledger.tables import transfers as ledger_transfers
from tests.clearing.billerharness import BillerService, biller_service
from tests.clearing.test_engine import ADULT, ADULT_2, World, engine_pg_url, world, world_url

__all__ = ["biller_service", "engine_pg_url", "world", "world_url"]

WATER = "city-water"  # a biller the biller service knows
COUNTER_TERMINAL = "0000030000A1"
ADMIN = Principal(token_pk=0, role=Role.ADMIN, subject=None, participant_id=None)
T = TypeVar("T")


@pytest.fixture
async def bills(
    world: World, biller_service: BillerService, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    """The world plus the water company (a utility with a counter terminal); the Celery tasks
    read this world's database and the biller service from the environment, as a worker does."""
    monkeypatch.setenv("ONECARD_DATABASE_URL", world.url)
    monkeypatch.setenv("ONECARD_BILLER_URL", biller_service.url)
    get_settings.cache_clear()
    assert celery_app.conf.task_always_eager  # the embedded default: tasks run in-process

    async def setup(session: AsyncSession) -> None:
        await registry_service.create_participant(
            session,
            ParticipantCreate(
                code=WATER,
                name="City Water Co.",
                kind="utility",
                commission_bp=80,
                bank_account="6222000000000080",
                bank_name="Bank of the City",
            ),
            escrow_account=ESCROW_ACCOUNT_DEFAULT,
        )
        await registry_service.register_terminal(
            session,
            TerminalCreate(
                terminal_id=COUNTER_TERMINAL,
                participant=WATER,
                kind="utility",
                line=None,
                public_key="14" * 32,
            ),
        )

    await in_tx(world, setup)
    yield world
    get_settings.cache_clear()


async def in_tx(world: World, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One committed transaction, as an endpoint or a task would run it."""
    async with world.ledger.transaction() as conn:
        session = AsyncSession(bind=conn, expire_on_commit=False)
        result = await work(session)
        await session.flush()
        await session.close()
        return result


async def bill_transfers(world: World) -> int:
    async with world.ledger.engine.connect() as conn:
        query = select(func.count()).where(
            ledger_transfers.c.code == int(TransferCode.BILL_PAYMENT)
        )
        return int((await conn.execute(query)).scalar_one())


async def pay_online(world: World, bill: dict[str, Any], resident: str, ref: str) -> Any:
    async def pay(session: AsyncSession) -> Any:
        payment = await service.start_bill_payment(
            session,
            resident_id=resident,
            biller_code=WATER,
            account_no=bill["account_no"],
            bill_id=bill["bill_id"],
            amount_fen=bill["amount_due_fen"],
            channel="stripe",
            request_id=f"req-{ref}",
        )
        return await service.bill_paid(
            session,
            payment_id=payment.id,
            paid_from_account=books.STRIPE_BALANCE,
            external_ref=ref,
            ledger=world.ledger,
        )

    return await in_tx(world, pay)


async def confirmation(world: World, payment_id: str) -> BillConfirmation:
    async def read(session: AsyncSession) -> BillConfirmation:
        row = await session.get(BillConfirmation, payment_id)
        assert row is not None
        return row

    return await in_tx(world, read)


async def test_a_bill_paid_online_posts_once_to_the_biller_and_keeps_a_receipt(
    bills: World, biller_service: BillerService
) -> None:
    bill = biller_service.add_bill(WATER, 4_321)
    looked = await in_tx(bills, lambda s: service.lookup_bill(s, WATER, bill["account_no"]))
    assert (looked.bill_id, looked.amount_due_fen) == (bill["bill_id"], 4_321)

    receipt = await pay_online(bills, bill, "resident-0", "pi_one")
    again = await pay_online(bills, bill, "resident-0", "pi_one")  # phone and webhook repeat
    assert again.id == receipt.id
    assert (receipt.resident_id, receipt.amount_fen, receipt.paid_from) == (
        "resident-0",
        4_321,
        "stripe",
    )
    assert await bills.balance(books.payable(WATER)) == 4_321
    assert await bills.balance(books.STRIPE_BALANCE) == 4_321
    assert await bill_transfers(bills) == 1

    with pytest.raises(BillAlreadyPaid):
        await in_tx(bills, lambda s: service.lookup_bill(s, WATER, bill["account_no"]))
    with pytest.raises(BillAlreadyPaid):  # another resident, another payment: refused
        await pay_online(bills, bill, "resident-1", "pi_two")
    assert await bills.balance(books.payable(WATER)) == 4_321


async def test_the_biller_down_for_a_while_is_asked_again_until_one_confirmation_counts(
    bills: World, biller_service: BillerService
) -> None:
    bill = biller_service.add_bill(WATER, 3_000)
    receipt = await pay_online(bills, bill, "resident-0", "pi_down")
    before = biller_service.stats()
    biller_service.outage(requests=3)

    taken = await asyncio.to_thread(tasks.dispatch_confirmations, [receipt.payment_id])

    assert taken == [receipt.payment_id]
    row = await confirmation(bills, receipt.payment_id)
    assert row.state is ConfirmationState.ACKNOWLEDGED
    assert row.attempts == 4  # three 503s, then the acknowledgement
    after = biller_service.stats()
    assert after["refused_503"] - before["refused_503"] == 3
    assert after["accepted"] - before["accepted"] == 1

    # the sweep finds nothing left to do; asking again changes nothing on either side
    assert await asyncio.to_thread(tasks.dispatch_confirmations, None) == []
    outcome = await in_tx(bills, lambda s: confirmations.confirm_once(s, receipt.payment_id))
    assert outcome.acknowledged and outcome.attempts == 4
    assert biller_service.stats()["confirm_requests"] == after["confirm_requests"]
    # the biller is idempotent by our payment id: a repeated confirmation is the same ack
    payment = await in_tx(bills, lambda s: s.get(BillPayment, receipt.payment_id))
    assert payment is not None and payment.paid_at is not None
    ack = await HttpBillerAdapter(WATER, biller_service.url, "", 5).confirm(
        Confirmation(
            payment.id, payment.account_no, payment.bill_id, 3_000, payment.paid_at, "stripe"
        )
    )
    assert ack == row.biller_ack
    assert biller_service.stats()["accepted"] == after["accepted"]
    day = datetime.now(UTC).date().isoformat()
    lines = biller_service.confirmation_file(WATER, day)
    assert sum(receipt.payment_id in line for line in lines) == 1


async def test_a_counter_payment_by_card_moves_the_card_money_once_through_its_tap(
    bills: World, biller_service: BillerService
) -> None:
    bill = biller_service.add_bill(WATER, 2_500)

    async def start(session: AsyncSession) -> BillPayment:
        return await counter.start_counter_payment(
            session,
            ADMIN,
            biller_code=WATER,
            account_no=bill["account_no"],
            bill_id=bill["bill_id"],
            amount_fen=2_500,
            card_no=ADULT,
            request_id="counter-req-1",
        )

    payment = await in_tx(bills, start)
    record = bills.ride(
        ADULT, 2_500, terminal_id=COUNTER_TERMINAL, at=datetime.now(UTC) - timedelta(minutes=1)
    )
    await bills.upload([record], terminal_id=COUNTER_TERMINAL)

    async def tapped(session: AsyncSession, seq: int = record["terminal_seq"]) -> Any:
        return await counter.counter_tap_done(
            session,
            ADMIN,
            biller_code=WATER,
            payment_id=payment.id,
            terminal_id=COUNTER_TERMINAL,
            terminal_seq=seq,
            ledger=bills.ledger,
        )

    with pytest.raises(counter.CounterTapNotFound):  # not this bill's tap: nothing happens
        await in_tx(bills, lambda s: tapped(s, record["terminal_seq"] + 7))
    receipt = await in_tx(bills, tapped)
    # linked to no resident's account: the receipt is nobody's (test_billing_api links one)
    assert (receipt.resident_id, receipt.paid_from) == (None, f"card ****{ADULT[-4:]}")
    assert (await in_tx(bills, tapped)).id == receipt.id  # repeated by the counter: same
    assert await bill_transfers(bills) == 0  # the bill flow posts nothing for a card
    summary = await bills.engine.clear_pending()
    assert summary.posted == 1
    assert await bills.balance(books.payable(WATER)) == 2_500
    assert await bills.balance(books.card(ADULT)) == 10_000 - 2_500
    assert (await bills.engine.clear_pending()).records_seen == 0
    await asyncio.to_thread(tasks.dispatch_confirmations, [payment.id])
    assert (await confirmation(bills, payment.id)).state is ConfirmationState.ACKNOWLEDGED


async def test_a_blocked_card_cannot_pay_at_the_counter_and_nothing_starts(
    bills: World, biller_service: BillerService
) -> None:
    bill = biller_service.add_bill(WATER, 1_200)
    await in_tx(bills, lambda s: cards_service.block_card(s, ADULT_2, "test", "fraud"))

    async def start(session: AsyncSession) -> BillPayment:
        return await counter.start_counter_payment(
            session,
            ADMIN,
            biller_code=WATER,
            account_no=bill["account_no"],
            bill_id=bill["bill_id"],
            amount_fen=1_200,
            card_no=ADULT_2,
            request_id="counter-req-2",
        )

    with pytest.raises(counter.CardNotUsable, match="blocked"):
        await in_tx(bills, start)
    count = await in_tx(bills, lambda s: s.scalar(select(func.count()).select_from(BillPayment)))
    assert count == 0


async def test_settlement_pays_the_biller_its_bills_less_commission(
    bills: World, biller_service: BillerService
) -> None:
    online = biller_service.add_bill(WATER, 4_000)
    await pay_online(bills, online, "resident-0", "pi_settle")
    now = datetime.now(UTC)
    record = bills.ride(ADULT, 1_000, terminal_id=COUNTER_TERMINAL, at=now - timedelta(minutes=1))
    await bills.upload([record], terminal_id=COUNTER_TERMINAL)
    await bills.engine.clear_pending()
    calendar = BusinessCalendar(ZoneInfo("Asia/Shanghai"), time(4, 0))
    day = calendar.business_day(now)
    async with bills.ledger.transaction() as conn:
        settled = await settle_day(
            conn, bills.ledger, day, calendar=calendar, now=now, actor="t", force=True
        )
    [line] = [line for line in settled.lines if line.participant_code == WATER]
    assert (line.taps, line.gross_fen, line.commission_fen) == (2, 5_000, 40)  # 80 bp
    assert line.net_fen == 4_960
    assert await bills.balance(books.payable(WATER)) == 0
