"""A seeded day for matchers 4 and 6, on SQLite and PostgreSQL: a Stripe top-up whose webhook
never came, a Stripe payout short by its fee on the bank statement, and a bill payment its
biller never confirmed are exactly one break each and nothing else; when the webhook is
delivered, the rest of the payout is credited and the confirmation is sent, a re-run closes
exactly those three.

Stripe's account and the billers' files are the two outside systems here: `StripeAccount` and
`BillerFiles` hold what their APIs would list (test_stripe_billers_sources.py reads the real
ones, localstripe and the biller simulator, through the production sources)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clearing.billing.models import BillPayment, PaymentChannel, PaymentStatus
from clearing.mobile import service as mobile_service
from clearing.mobile.models import PaymentMethodType, Topup, TopupState
from clearing.settings import Settings
from reconciliation import repository
from reconciliation.bank.statement import BankEntry, Direction, EntryDetail
from reconciliation.billers.matching import ConfirmationLine
from reconciliation.checks import CHECKS
from reconciliation.checks.bank import BankCheck
from reconciliation.checks.base import BreakKind
from reconciliation.checks.billers import BillerCheck
from reconciliation.checks.stripe import StripeCheck
from reconciliation.run import RunSummary, run_day
from reconciliation.stripe.matching import StripeCharge, StripePayout
from tests.clearing.test_engine import World
from tests.reconciliation.conftest import CALENDAR, past_day
from tests.reconciliation.test_bank_import import import_xml, statement_xml

CARD = "3100000000000000"
WATER = "city-water"
STRIPE_FEE = 150


class StripeAccount:
    """What Stripe's API lists for the account (charges with their fees, payouts)."""

    def __init__(self) -> None:
        self.listed: list[StripeCharge] = []
        self.paid_out: list[StripePayout] = []

    async def charges(self, start: datetime, end: datetime) -> list[StripeCharge]:
        return [c for c in self.listed if start <= c.created < end]

    async def payouts(self, first: date, last: date) -> list[StripePayout]:
        return [p for p in self.paid_out if first <= p.arrival_date <= last]


class BillerFiles:
    """The confirmation files each biller serves, per day."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, date], list[ConfirmationLine]] = defaultdict(list)

    async def lines(self, biller: str, day: date) -> list[ConfirmationLine]:
        return list(self.files[(biller, day)])

    def confirm(self, payment: dict[str, Any], day: date) -> None:
        self.files[(payment["biller_code"], day)].append(
            ConfirmationLine(
                payment["biller_code"],
                day,
                payment["id"],
                f"ack-{payment['id']}",
                payment["amount_fen"],
                payment["bill_id"],
            )
        )


async def add_topup(world: World, pi: str, amount: int, at: datetime) -> Topup:
    async with world.ledger.transaction() as conn:
        session = AsyncSession(bind=conn)
        topup = Topup(
            topup_id=f"tu_{pi}",
            resident_id="resident-1",
            request_id=pi,
            card_no=CARD,
            amount_fen=amount,
            method_type=PaymentMethodType.CARD,
            state=TopupState.REQUIRES_ACTION,
            payment_intent_id=pi,
            fee_fen=0,
            created_at=at,
            updated_at=at,
        )
        session.add(topup)
        await session.flush()
        await session.close()
    return topup


async def webhook_paid(world: World, pi: str) -> None:
    """What the payment_intent.succeeded webhook does: clearing posts the paid top-up."""
    async with world.ledger.transaction() as conn:
        session = AsyncSession(bind=conn)
        topup = await session.get(Topup, f"tu_{pi}")
        assert topup is not None
        await mobile_service.post_paid(session, world.ledger, topup, pi, STRIPE_FEE, Settings())
        await session.close()


async def add_bill_payment(world: World, n: int, amount: int, at: datetime) -> dict[str, Any]:
    row = {
        "id": f"bp_{n:032d}",
        "requester": f"counter:{WATER}",
        "request_id": f"r{n}",
        "biller_code": WATER,
        "account_no": f"A{n}",
        "bill_id": f"W{n}",
        "period": "2026-11",
        "amount_fen": amount,
        "channel": PaymentChannel.COUNTER,
        "card_no": CARD,
        "status": PaymentStatus.PAID,
        "paid_bill_key": f"{WATER}:W{n}",
        "paid_from_account": f"card:{CARD}",
        "external_ref": f"tap:T1:{n}",
        "created_at": at,
        "paid_at": at,
    }
    async with world.ledger.transaction() as conn:
        session = AsyncSession(bind=conn)
        session.add(BillPayment(**row))
        await session.flush()
        await session.close()
    return row


def payout_credit(ref: str, fen: int, day: date, payout_id: str) -> BankEntry:
    detail = EntryDetail(None, payout_id, None, None, f"STRIPE {payout_id}", "Stripe", "STRIPE-1")
    return BankEntry(0, ref, fen, Direction.CREDIT, day, day, False, None, None, (detail,))


async def reconcile(
    world: World, day: date, stripe: StripeAccount, billers: BillerFiles
) -> RunSummary:
    checks = [c for c in CHECKS if c.name not in {"stripe", "bank", "billers"}]
    checks += [StripeCheck(stripe), BankCheck(stripe=stripe), BillerCheck(billers)]
    async with world.ledger.engine.begin() as conn:
        return await run_day(conn, day, calendar=CALENDAR, checks=checks)


async def open_breaks(world: World) -> list[dict[str, Any]]:
    async with world.ledger.engine.connect() as conn:
        return await repository.list_breaks(conn, statuses=["open", "assigned", "explained"])


async def test_each_stripe_and_biller_fault_is_one_break_closed_when_the_data_arrives(
    world: World,
) -> None:
    day = past_day(3)  # the day of the top-ups and bills; the run is of the payout's day
    at = CALENDAR.day_start(day) + timedelta(hours=3)
    stripe, billers = StripeAccount(), BillerFiles()
    # Two top-ups charged at Stripe; only the first's webhook came.
    for n, pi in enumerate(("pi_delivered", "pi_lost")):
        await add_topup(world, pi, 5_000 + n, at)
        stripe.listed.append(
            StripeCharge(
                f"txn_{n}", f"ch_{n}", pi, 5_000 + n, STRIPE_FEE, at + timedelta(minutes=1)
            )
        )
    await webhook_paid(world, "pi_delivered")
    # Stripe pays the day out the next day; the bank credited the payout short by its fee.
    payout_day = day + timedelta(days=1)
    stripe.paid_out.append(StripePayout("po_1", 9_700, payout_day, "paid"))
    await import_xml(
        world, statement_xml("S1", payout_credit("B1", 9_700 - STRIPE_FEE, payout_day, "po_1"))
    )
    # Two bills paid at the water counter; the biller's file lists only the first.
    paid = [await add_bill_payment(world, n, 3_000 + n, at) for n in range(2)]
    billers.confirm(paid[0], day)

    first = await reconcile(world, payout_day, stripe, billers)
    found = await open_breaks(world)
    by_kind = {r["kind"]: r for r in found}
    assert sorted(by_kind) == sorted(
        [
            BreakKind.STRIPE_PAYMENT_UNPOSTED,
            BreakKind.STRIPE_PAYOUT_UNMATCHED,
            BreakKind.BILLER_UNCONFIRMED,
        ]
    ), found
    assert len(found) == 3
    assert by_kind[BreakKind.STRIPE_PAYMENT_UNPOSTED]["key"] == "charge:ch_1"
    assert by_kind[BreakKind.STRIPE_PAYMENT_UNPOSTED]["amount_fen"] == 5_001
    assert by_kind[BreakKind.STRIPE_PAYOUT_UNMATCHED]["amount_fen"] == STRIPE_FEE
    assert by_kind[BreakKind.STRIPE_PAYOUT_UNMATCHED]["counterpart"] == "stripe"
    assert by_kind[BreakKind.BILLER_UNCONFIRMED]["key"] == f"payment:{paid[1]['id']}"
    assert by_kind[BreakKind.BILLER_UNCONFIRMED]["counterpart"] == WATER
    rates = {c.name: (c.matched, c.total) for c in first.checks}
    assert rates["stripe"] == (1, 2)
    assert rates["billers"] == (1, 2)

    again = await reconcile(world, payout_day, stripe, billers)
    assert (again.found, again.new, again.closed) == (3, 0, 0)

    await webhook_paid(world, "pi_lost")  # Stripe re-delivered the event
    await import_xml(
        world, statement_xml("S2", payout_credit("B2", STRIPE_FEE, payout_day, "po_1"))
    )
    billers.confirm(paid[1], day + timedelta(days=1))  # the biller's next file lists it
    closing = await reconcile(world, payout_day, stripe, billers)
    assert (closing.found, closing.new, closing.closed) == (0, 0, 3)
    assert await open_breaks(world) == []
