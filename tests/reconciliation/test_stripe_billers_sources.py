"""The production sources of matchers 4 and 6 against the real outside services the tests run:
localstripe (Stripe's API through the official SDK, paginated) and the biller simulator (its
daily confirmation file over HTTP)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from clearing.mobile.gateway import StripeGateway
from clearing.settings import Settings
from reconciliation.billers.source import HttpConfirmationSource, parse_file
from reconciliation.errors import BillerUnreachable
from reconciliation.stripe.source import StripeApiSource
from tests.clearing.billerharness import BillerService, biller_service  # noqa: F401

SECRET_KEY = "sk_test_onecard"


async def test_charges_are_read_page_by_page_with_their_intents(localstripe: str) -> None:
    settings = Settings(stripe_secret_key=SECRET_KEY, stripe_api_base=localstripe)
    client = StripeGateway(settings).client
    started = datetime.now(UTC) - timedelta(seconds=2)
    intents = {}
    for amount in (1_100, 2_200, 3_300):
        intent = await client.v1.payment_intents.create_async(
            {
                "amount": amount,
                "currency": "cny",
                "payment_method_types": ["card"],
                "payment_method": "pm_card_visa",
                "confirm": True,
            }
        )
        intents[intent.id] = amount
    source = StripeApiSource(settings, page_size=2)  # three charges: at least two pages
    charges = await source.charges(started, datetime.now(UTC) + timedelta(seconds=2))
    ours = {c.payment_intent: c for c in charges if c.payment_intent in intents}
    assert {pi: c.amount_fen for pi, c in ours.items()} == intents
    assert all(c.txn_id.startswith("txn_") and c.charge_id.startswith("ch_") for c in ours.values())


async def test_a_billers_file_lists_what_it_confirmed(biller_service: BillerService) -> None:  # noqa: F811
    bill = biller_service.add_bill("city-water", 4_321)
    payment_id = f"bp_{secrets.token_hex(16)}"
    httpx.post(
        f"{biller_service.url}/billers/city-water/confirmations",
        json={
            "payment_id": payment_id,
            "account_no": bill["account_no"],
            "bill_id": bill["bill_id"],
            "amount_fen": 4_321,
            "paid_at": datetime.now(UTC).isoformat(),
            "channel": "counter",
        },
    ).raise_for_status()
    source = HttpConfirmationSource(Settings(biller_url=biller_service.url))
    lines = await source.lines("city-water", datetime.now(UTC).date())
    [line] = [ln for ln in lines if ln.payment_id == payment_id]
    assert (line.amount_fen, line.bill_id, line.biller) == (4_321, bill["bill_id"], "city-water")
    assert line.ack_id.startswith("ack-city-water-")


async def test_an_unreachable_biller_stops_the_check_with_one_line() -> None:
    source = HttpConfirmationSource(Settings(biller_url="http://127.0.0.1:9", biller_timeout_s=1))
    with pytest.raises(BillerUnreachable, match="run the day again"):
        await source.lines("city-water", datetime.now(UTC).date())


def test_a_line_that_does_not_parse_is_kept_not_dropped() -> None:
    text = "payment_id,ack_id,account_no,bill_id,amount_fen,paid_at,channel\nbp_1,a1,A,B,x,,\n"
    [line] = parse_file("city-water", datetime.now(UTC).date(), text)
    assert (line.payment_id, line.amount_fen) == ("bp_1", -1)
