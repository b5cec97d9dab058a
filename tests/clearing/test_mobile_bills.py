"""Bills paid on the phone through Stripe (localstripe) against the real biller service: two
top-ups and a bill payment of one resident at once, each exactly once in the ledger."""

from __future__ import annotations

import asyncio

import pytest

from clearing.books import chart
from clearing.registry import repository as registry_repository
from clearing.registry import service as registry_service
from clearing.registry.schemas import ParticipantCreate
from clearing.settings import ESCROW_ACCOUNT_DEFAULT, get_settings
from tests.clearing.billerharness import BillerService, biller_service
from tests.clearing.mobileharness import stripe_event, stripe_world

__all__ = ["biller_service"]

WATER = "city-water"


async def test_two_top_ups_and_a_bill_payment_at_once_each_post_once(
    pg_url, tmp_path, localstripe, biller_service: BillerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the biller's confirmation runs as a (eager) Celery task: it reads the environment
    monkeypatch.setenv("ONECARD_DATABASE_URL", pg_url)
    monkeypatch.setenv("ONECARD_BILLER_URL", biller_service.url)
    get_settings.cache_clear()
    async with stripe_world(pg_url, tmp_path, localstripe, biller_url=biller_service.url) as mw:
        async with mw.app.state.sessionmaker() as session:
            if await registry_repository.participant_by_code(session, WATER) is None:
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
                await session.commit()
        resident = await mw.resident()
        payable_before = await mw.balance(chart.payable(WATER))  # the database is shared
        bill = biller_service.add_bill(WATER, 4_321)
        pay_bill = mw.client.post(
            "/v1/me/bill-payments",
            json={
                "biller": WATER,
                "account_no": bill["account_no"],
                "bill_id": bill["bill_id"],
                "amount_fen": 4_321,
                "request_id": "water-1",
                "payment_method": "pm_card_visa",
            },
            headers=resident.auth,
        )
        answers = await asyncio.gather(
            mw.topup(resident, 1_000), mw.topup(resident, 2_000), pay_bill
        )
        assert [a.status_code for a in answers] == [201, 201, 201], [a.text for a in answers]
        intent_ids = [a.json()["payment_intent_id"] for a in answers]
        gateway = mw.gateway()
        intents = [await gateway.client.v1.payment_intents.retrieve_async(i) for i in intent_ids]
        events = [stripe_event("payment_intent.succeeded", i) for i in intents]
        delivered = await asyncio.gather(*(mw.deliver(e) for e in events * 2))
        assert all(d.status_code == 200 for d in delivered), [
            d.text[:300] for d in delivered if d.status_code != 200
        ]
        assert sorted(d.json()["duplicate"] for d in delivered) == [False] * 3 + [True] * 3
        assert await mw.pending_fen(resident.card_no) == 3_000
        assert await mw.balance(chart.payable(WATER)) - payable_before == 4_321
        receipts = await mw.client.get("/v1/me/receipts", headers=resident.auth)
        assert [r["amount_fen"] for r in receipts.json()] == [4_321]
    get_settings.cache_clear()
