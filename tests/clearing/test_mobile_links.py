"""A resident acts only on the cards linked to their account (clearing/residents), never on a
card by its registry holder id: top-ups, bill payments and receipts, report-lost. A card they
have not linked is 404 (as a number never issued) and nothing is charged or changed."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select

from clearing.auth.models import Role
from clearing.billing.models import BillPayment
from tests.clearing.mobileharness import session_of, stripe_world


async def test_a_resident_tops_up_only_the_cards_linked_to_them(sqlite_url, tmp_path, localstripe):
    async with stripe_world(sqlite_url, tmp_path, localstripe) as mw:
        han = await mw.resident()
        li = await mw.resident()
        # in the registry under han's id, but han never linked it: the old holder rule let it by
        held_not_linked = await mw.issue_card(han.resident_id, 500)
        for card_no in (held_not_linked, li.card_no):
            refused = await mw.topup(han, 1000, card_no=card_no)
            assert refused.status_code == 404, refused.text
            assert refused.json()["code"] == "not_found"
            assert "link it first" in refused.json()["detail"]
            assert await mw.pending_fen(card_no) == 0
        unlinked = await mw.client.delete(f"/v1/me/cards/{han.card_no}", headers=han.auth)
        assert unlinked.status_code in (200, 204), unlinked.text
        after_unlink = await mw.topup(han, 1000)
        assert after_unlink.status_code == 404, after_unlink.text
        mine = await mw.client.get("/v1/me/topups", headers=han.auth)
        assert mine.json()["topups"] == []  # nothing reserved, Stripe never asked
        assert await mw.pending_fen(han.card_no) == 0
        paid = await mw.topup(li, 1000)  # li's own linked card goes through
        assert paid.status_code == 201, paid.text


async def test_bills_and_receipts_need_a_resident_account(sqlite_url, tmp_path, localstripe):
    async with stripe_world(sqlite_url, tmp_path, localstripe) as mw:
        ghost = "res_" + secrets.token_hex(8)  # a resident token naming no account
        auth = {"Authorization": f"Bearer {await mw.w.token(Role.RESIDENT, ghost)}"}
        body = {
            "biller": "city-water",
            "account_no": "W1001",
            "bill_id": "bill-1",
            "amount_fen": 900,
            "request_id": "ghost-1",
            "payment_method": "pm_card_visa",
        }
        for headers in (auth, mw.w.auth("admin")):
            paid = await mw.client.post("/v1/me/bill-payments", json=body, headers=headers)
            assert paid.status_code == 403, paid.text
            assert paid.json()["code"] == "not_a_resident"
            receipts = await mw.client.get("/v1/me/receipts", headers=headers)
            assert receipts.status_code == 403 and receipts.json()["code"] == "not_a_resident"
        async with session_of(mw) as session:
            started = select(func.count()).where(BillPayment.resident_id == ghost)
            assert await session.scalar(started) == 0
        han = await mw.resident()
        mine = await mw.client.get("/v1/me/receipts", headers=han.auth)
        assert mine.status_code == 200 and mine.json() == []


async def test_a_resident_reports_lost_only_a_card_they_linked(sqlite_url, tmp_path, localstripe):
    async with stripe_world(sqlite_url, tmp_path, localstripe) as mw:
        han = await mw.resident(first_load_fen=700)
        li = await mw.resident()
        held_not_linked = await mw.issue_card(han.resident_id, 500)
        for card_no in (held_not_linked, li.card_no):
            lost = await mw.client.post(
                f"/v1/cards/{card_no}/report-lost", json={"reason": "gone"}, headers=han.auth
            )
            assert lost.status_code == 404, lost.text
            replacement = await mw.client.get(f"/v1/cards/{card_no}/replacement", headers=han.auth)
            assert replacement.status_code == 404, replacement.text
            seen = await mw.client.get(f"/v1/cards/{card_no}", headers=han.auth)
            assert seen.status_code == 404, seen.text
            card = await mw.client.get(f"/v1/cards/{card_no}", headers=mw.w.auth("admin"))
            assert card.json()["card"]["status"] == "active"  # untouched
        listed = await mw.client.get("/v1/cards", headers=han.auth)
        assert [c["card_no"] for c in listed.json()] == [han.card_no]
        lost = await mw.client.post(
            f"/v1/cards/{han.card_no}/report-lost", json={"reason": "gone"}, headers=han.auth
        )
        assert lost.status_code == 200, lost.text
        assert lost.json()["card"]["status"] == "lost"
        again = await mw.client.post(
            f"/v1/cards/{han.card_no}/report-lost", json={"reason": "gone"}, headers=han.auth
        )
        assert again.status_code == 200, again.text  # still linked, still theirs: idempotent
        refused = await mw.topup(han, 100)
        assert refused.status_code == 409 and refused.json()["code"] == "card_not_usable"
        staff = await mw.client.post(
            f"/v1/cards/{li.card_no}/report-lost",
            json={"reason": "desk"},
            headers=mw.w.auth("admin"),
        )
        assert staff.status_code == 200, staff.text  # staff paths unchanged
