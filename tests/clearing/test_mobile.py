"""Top-ups through Stripe (localstripe, the official SDK) and Stripe's webhook, end to end on
the real app, ledger and lists: exactly once whatever Stripe repeats or reorders."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from clearing.auth.models import Role
from clearing.books import chart
from clearing.db.base import utc_now
from clearing.lists import repository as lists_repository
from clearing.lists import service as lists_service
from clearing.lists.models import PendingLoadState
from clearing.mobile import service as mobile_service
from clearing.mobile.models import PaymentMethodType, StripeEvent
from tests.clearing.mobileharness import stripe_event, stripe_world
from tests.clearing.staffharness import officer


@pytest.fixture(params=["pg_url", "sqlite_url"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(request.param)


async def paid(mw, resident, amount_fen: int = 5000) -> dict:
    """A card top-up created through the API and its succeeded event delivered once."""
    created = await mw.topup(resident, amount_fen)
    assert created.status_code == 201, created.text
    topup = created.json()
    intent = await mw.gateway().client.v1.payment_intents.retrieve_async(topup["payment_intent_id"])
    answer = await mw.deliver(stripe_event("payment_intent.succeeded", intent))
    assert answer.status_code == 200 and answer.json()["outcome"] == "applied", answer.text
    return topup


async def test_one_event_delivered_three_times_posts_once(db_url, tmp_path, localstripe) -> None:
    async with stripe_world(db_url, tmp_path, localstripe) as mw:
        resident = await mw.resident()
        created = await mw.topup(resident, 5000)
        assert created.status_code == 201, created.text
        topup = created.json()
        assert topup["state"] == "created" and topup["payment_intent_id"].startswith("pi_")
        intent = await mw.gateway().client.v1.payment_intents.retrieve_async(
            topup["payment_intent_id"]
        )
        assert (intent.status, intent.currency, intent.amount) == ("succeeded", "cny", 5000)
        event = stripe_event("payment_intent.succeeded", intent)
        answers = [(await mw.deliver(event)).json() for _ in range(3)]
        assert [a["duplicate"] for a in answers] == [False, True, True]
        assert answers[0]["outcome"] == "applied"
        assert await mw.pending_fen(resident.card_no) == 5000
        assert await mw.balance(chart.STRIPE_BALANCE) != 0
        again = await mw.client.get(f"/v1/me/topups/{topup['topup_id']}", headers=resident.auth)
        assert again.json()["state"] == "succeeded"
        assert again.json()["load_id"] == "stripe-" + topup["payment_intent_id"]
        action = (await mw.w.terminal.get_list("action", 0)).json()
        (load,) = [a for a in action["added"] if a["card_no"] == resident.card_no]
        assert load["amount_fen"] == 5000
        # the same request again is the same top-up: no second PaymentIntent, nothing charged
        body = {
            "card_no": resident.card_no,
            "amount_fen": 5000,
            "request_id": "phone-1",
            "payment_method": "pm_card_visa",
        }
        first = await mw.client.post("/v1/me/topups", json=body, headers=resident.auth)
        second = await mw.client.post("/v1/me/topups", json=body, headers=resident.auth)
        assert first.json()["payment_intent_id"] == second.json()["payment_intent_id"]
        other = await mw.client.post(
            "/v1/me/topups", json={**body, "amount_fen": 100}, headers=resident.auth
        )
        assert other.status_code == 409 and other.json()["code"] == "request_id_reused"


async def test_a_bad_signature_is_400_and_nothing_is_posted(sqlite_url, tmp_path, localstripe):
    async with stripe_world(sqlite_url, tmp_path, localstripe) as mw:
        resident = await mw.resident()
        topup = (await mw.topup(resident, 3000)).json()
        intent = await mw.gateway().client.v1.payment_intents.retrieve_async(
            topup["payment_intent_id"]
        )
        event = stripe_event("payment_intent.succeeded", intent)
        wrong = await mw.deliver(event, secret="whsec_not_this_endpoints")
        stale = await mw.deliver(event, at=int(time.time()) - 600)
        unsigned = await mw.client.post("/v1/stripe/webhook", json=event)
        for answer in (wrong, stale):
            assert answer.status_code == 400, answer.text
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.json()["code"] == "bad_signature"
        assert unsigned.status_code == 401  # no signature at all: not Stripe
        assert unsigned.json()["code"] == "stripe_signature_required"
        async with mw.app.state.sessionmaker() as session:
            assert await session.get(StripeEvent, event["id"]) is None
        assert await mw.pending_fen(resident.card_no) == 0
        # the genuine delivery afterwards is the first one that counts
        assert (await mw.deliver(event)).json()["duplicate"] is False
        assert await mw.pending_fen(resident.card_no) == 3000


async def test_succeeded_before_the_creation_answer_is_stored_posts_once(
    db_url, tmp_path, localstripe
) -> None:
    async with stripe_world(db_url, tmp_path, localstripe) as mw:
        resident = await mw.resident()
        settings = mw.app.state.settings
        wanted = mobile_service.TopupRequest(
            resident.card_no, 4200, "early-bird", PaymentMethodType.CARD, "pm_card_visa"
        )
        async with mw.app.state.sessionmaker() as session:
            topup, call = await mobile_service.reserve_topup(
                session, mw.app.state.ledger, resident.resident_id, wanted, settings
            )
            topup_id = topup.topup_id
            metadata = mobile_service.intent_metadata(topup)
            await session.commit()
        assert call
        # Stripe answers, but its webhook lands before the API stored the answer
        intent = await mw.gateway().create_intent(
            amount_fen=4200,
            method_type="card",
            payment_method="pm_card_visa",
            metadata=metadata,
            idempotency_key=mobile_service.rules.stripe_idempotency_key(topup_id),
        )
        raw = await mw.gateway().client.v1.payment_intents.retrieve_async(intent.id)
        event = stripe_event("payment_intent.succeeded", raw)
        assert (await mw.deliver(event)).json()["outcome"] == "applied"
        async with mw.app.state.sessionmaker() as session:
            stored = await mobile_service.record_intent(session, topup_id, intent)
            assert stored.state.value == "succeeded"  # never moved back
            await session.commit()
        assert (await mw.deliver(event)).json()["duplicate"] is True
        assert await mw.pending_fen(resident.card_no) == 4200


async def test_refund_before_delivery_withdraws_the_load(db_url, tmp_path, localstripe) -> None:
    async with stripe_world(db_url, tmp_path, localstripe) as mw:
        resident = await mw.resident()
        topup = await paid(mw, resident, 2500)
        gateway = mw.gateway()
        await gateway.refund(topup["payment_intent_id"], "test-refund")
        intent = await gateway.client.v1.payment_intents.retrieve_async(topup["payment_intent_id"])
        charge = await gateway.client.v1.charges.retrieve_async(intent.latest_charge.id)
        assert charge.refunded
        answer = await mw.deliver(stripe_event("charge.refunded", charge))
        assert answer.json()["outcome"] == "applied", answer.text
        assert await mw.pending_fen(resident.card_no) == 0
        async with mw.app.state.sessionmaker() as session:
            load = await lists_repository.pending_load(session, "stripe-" + intent.id)
            assert load.state is PendingLoadState.CANCELLED
        action = (await mw.w.terminal.get_list("action", 0)).json()
        assert all(a["card_no"] != resident.card_no for a in action["added"])
        state = await mw.client.get(f"/v1/me/topups/{topup['topup_id']}", headers=resident.auth)
        assert state.json()["state"] == "refunded"


async def test_staff_refund_withdraws_the_load_then_refunds_at_stripe(
    sqlite_url, tmp_path, localstripe
) -> None:
    async with stripe_world(sqlite_url, tmp_path, localstripe) as mw:
        resident = await mw.resident()
        topup = await paid(mw, resident, 1800)
        path = f"/v1/mobile/topups/{topup['topup_id']}/refund"
        direct = await mw.client.post(path, headers=mw.w.auth("admin"))
        assert direct.status_code == 409 and direct.json()["code"] == "second_person_required"
        _, clerk = await officer(mw.w.app, Role.ADMIN, prefix="adm")
        _, finance = await officer(mw.w.app)
        body = {"kind": "topup_refund", "target": topup["topup_id"], "reason": "asked by phone"}
        asked = await mw.client.post("/v1/approvals", json=body, headers=clerk)
        assert asked.status_code == 201, asked.text
        assert await mw.pending_fen(resident.card_no) == 1800  # asking moves nothing
        approve = f"/v1/approvals/{asked.json()['id']}/approve"
        assert (await mw.client.post(approve, json={}, headers=clerk)).status_code == 403
        refunded = await mw.client.post(approve, json={}, headers=finance)
        assert refunded.status_code == 200, refunded.text
        state = await mw.client.get(f"/v1/me/topups/{topup['topup_id']}", headers=resident.auth)
        assert state.json()["state"] == "refunded"
        assert await mw.pending_fen(resident.card_no) == 0
        intent = await mw.gateway().client.v1.payment_intents.retrieve_async(
            topup["payment_intent_id"]
        )
        charge = await mw.gateway().client.v1.charges.retrieve_async(intent.latest_charge.id)
        assert charge.refunded  # the money went back through Stripe
        # Stripe's charge.refunded that follows changes nothing more
        late = await mw.deliver(stripe_event("charge.refunded", charge))
        assert late.json()["outcome"] == "nothing_to_do"
        assert await mw.pending_fen(resident.card_no) == 0


async def test_refund_after_the_load_reached_the_card_is_refused_for_staff(
    db_url, tmp_path, localstripe
) -> None:
    async with stripe_world(db_url, tmp_path, localstripe) as mw:
        resident = await mw.resident()
        topup = await paid(mw, resident, 2000)
        async with mw.app.state.sessionmaker() as session:
            # what the clearing engine does when the load's TAC verifies (test_mobile_pcsc)
            load_id = "stripe-" + topup["payment_intent_id"]
            await lists_service.mark_pending_load(session, load_id, PendingLoadState.DELIVERED)
            await session.commit()
        _, finance = await officer(mw.w.app)
        body = {"kind": "topup_refund", "target": topup["topup_id"], "reason": "asked by phone"}
        refused = await mw.client.post("/v1/approvals", json=body, headers=finance)
        assert refused.status_code == 409 and refused.json()["code"] == "refund_after_delivery"
        assert "on the card" in refused.json()["detail"]
        # a refund made in Stripe's dashboard anyway: recorded and flagged, nothing booked
        gateway = mw.gateway()
        await gateway.refund(topup["payment_intent_id"], "dashboard")
        intent = await gateway.client.v1.payment_intents.retrieve_async(topup["payment_intent_id"])
        charge = await gateway.client.v1.charges.retrieve_async(intent.latest_charge.id)
        answer = await mw.deliver(stripe_event("charge.refunded", charge))
        assert answer.json()["outcome"] == "refused"
        assert "on the card" in answer.json()["detail"]
        flagged = await mw.client.get("/v1/mobile/flagged-topups", headers=mw.w.auth("finance"))
        (row,) = [t for t in flagged.json()["topups"] if t["topup_id"] == topup["topup_id"]]
        assert row["flag"] == "refund_after_delivery" and row["state"] == "delivered"
        assert await mw.pending_fen(resident.card_no) == 2000  # moved to card: by the engine


async def test_refund_and_dispute_before_success_still_post_in_order(
    sqlite_url, tmp_path, localstripe
) -> None:
    async with stripe_world(sqlite_url, tmp_path, localstripe) as mw:
        resident = await mw.resident()
        topup = (await mw.topup(resident, 1500)).json()
        gateway = mw.gateway()
        await gateway.refund(topup["payment_intent_id"], "early")
        intent = await gateway.client.v1.payment_intents.retrieve_async(topup["payment_intent_id"])
        charge = await gateway.client.v1.charges.retrieve_async(intent.latest_charge.id)
        dispute = {
            "id": "dp_test1",
            "object": "dispute",
            "payment_intent": intent.id,
            "charge": charge.id,
            "amount": 1500,
            "reason": "fraudulent",
        }
        assert (
            await mw.deliver(stripe_event("charge.dispute.created", dispute))
        ).status_code == 200
        refunded = await mw.deliver(stripe_event("charge.refunded", charge))
        assert refunded.json()["outcome"] == "applied"
        late = await mw.deliver(stripe_event("payment_intent.succeeded", intent))
        assert late.json()["outcome"] == "nothing_to_do"
        assert await mw.pending_fen(resident.card_no) == 0
        flagged = await mw.client.get("/v1/mobile/flagged-topups", headers=mw.w.auth("admin"))
        (row,) = [t for t in flagged.json()["topups"] if t["topup_id"] == topup["topup_id"]]
        assert row["flag"] == "disputed" and "fraudulent" in row["flag_detail"]


async def test_bad_input_is_a_problem_and_nothing_is_charged(sqlite_url, tmp_path, localstripe):
    async with stripe_world(
        sqlite_url, tmp_path, localstripe, topup_fen_max=20_000, card_balance_fen_max=30_000
    ) as mw:
        resident = await mw.resident(first_load_fen=15_000)
        over = await mw.topup(resident, 20_001)
        assert over.status_code == 422 and over.json()["code"] == "topup_over_cap"
        full = await mw.topup(resident, 16_000)
        assert full.status_code == 422 and full.json()["code"] == "card_balance_cap"
        assert "at most 15000 fen" in full.json()["detail"]
        stranger = await mw.resident()
        theirs = await mw.client.post(
            "/v1/me/topups",
            json={"card_no": stranger.card_no, "amount_fen": 100, "request_id": "x"},
            headers=resident.auth,
        )
        assert theirs.status_code == 404
        lost = await mw.client.post(
            f"/v1/cards/{resident.card_no}/report-lost",
            json={"reason": "left on the bus"},
            headers=resident.auth,
        )
        assert lost.status_code == 200, lost.text
        refused = await mw.topup(resident, 100)
        assert refused.status_code == 409 and refused.json()["code"] == "card_not_usable"
        declined = await mw.topup(stranger, 100, payment_method="pm_card_chargeCustomerFail")
        assert declined.status_code == 402 and declined.json()["code"] == "payment_declined"
        for who in (resident, stranger):
            mine = (await mw.client.get("/v1/me/topups", headers=who.auth)).json()["topups"]
            assert [t["state"] for t in mine] == ([] if who is resident else ["failed"])
            assert await mw.pending_fen(who.card_no) == 0


async def test_wallets_are_created_for_the_phone_to_finish(sqlite_url, tmp_path, localstripe):
    """Alipay and WeChat Pay: onecard creates the PaymentIntent in CNY and hands the phone its
    client_secret. localstripe cannot confirm either wallet (the intent stays
    requires_payment_method), so their success is not exercised here: the webhook path it
    would take is the card's, tested above."""
    async with stripe_world(sqlite_url, tmp_path, localstripe) as mw:
        resident = await mw.resident()
        for method in ("alipay", "wechat_pay"):
            answer = await mw.topup(resident, 1000, payment_method_type=method, payment_method=None)
            assert answer.status_code == 201, answer.text
            body = answer.json()
            assert body["state"] == "requires_action" and body["client_secret"]
            intent = await mw.gateway().client.v1.payment_intents.retrieve_async(
                body["payment_intent_id"]
            )
            assert intent.status == "requires_payment_method"  # localstripe stops here


async def test_concurrent_top_ups_of_one_resident_each_post_once(pg_url, tmp_path, localstripe):
    async with stripe_world(pg_url, tmp_path, localstripe) as mw:
        resident = await mw.resident()
        created = await asyncio.gather(*(mw.topup(resident, amount) for amount in (1100, 2200)))
        assert [c.status_code for c in created] == [201, 201]
        gateway = mw.gateway()
        intents = [
            await gateway.client.v1.payment_intents.retrieve_async(c.json()["payment_intent_id"])
            for c in created
        ]
        events = [stripe_event("payment_intent.succeeded", i) for i in intents]
        answers = await asyncio.gather(*(mw.deliver(e) for e in events * 3))
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        assert sorted(a.json()["duplicate"] for a in answers) == [False] * 2 + [True] * 4
        assert await mw.pending_fen(resident.card_no) == 3300


async def test_an_undelivered_top_up_expires_and_is_refunded_through_stripe(
    sqlite_url, tmp_path, localstripe
) -> None:
    from clearing.mobile.tasks import expire_topups

    async with stripe_world(sqlite_url, tmp_path, localstripe) as mw:
        resident = await mw.resident()
        topup = await paid(mw, resident, 900)
        settings = mw.app.state.settings
        assert await expire_topups(settings) == []  # not yet
        later = utc_now() + timedelta(days=settings.pending_load_expiry_days, minutes=1)
        done = await expire_topups(settings, later)
        assert done == [{"topup_id": topup["topup_id"], "amount_fen": 900}]
        assert await expire_topups(settings, later) == []  # once
        assert await mw.pending_fen(resident.card_no) == 0
        intent = await mw.gateway().client.v1.payment_intents.retrieve_async(
            topup["payment_intent_id"]
        )
        charge = await mw.gateway().client.v1.charges.retrieve_async(intent.latest_charge.id)
        assert charge.refunded
        state = await mw.client.get(f"/v1/me/topups/{topup['topup_id']}", headers=resident.auth)
        assert state.json()["state"] == "expired"
        action = (await mw.w.terminal.get_list("action", 0)).json()
        assert all(a["card_no"] != resident.card_no for a in action["added"])
