"""A resident's day, end to end in Debian's chromium against the real service: sign up, link
the card in their pocket, top up with a double click on "pay" (charged once), the next bus tap
writes the load (an in-process virtual card at a validator), the history shows the load and
the ride with the line and stop names of the fare feed, then a water bill is looked up, paid
and its receipt opened, and the card reported lost (on the deny list at once). Every page is
then shot at 390 and 1280 px in Chinese and English, and no page asked another host.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from clearing import db
from clearing.lists import service as lists_service
from clearing.mobile.models import Topup
from clearing.settings import get_settings
from terminals.terminal import TapOutcome
from tests.clearing.billerharness import BillerService, biller_service
from tests.web.conftest import DESK_WIDTH, PHONE_WIDTH, OpenPage, ServerThread, WebPage
from tests.web.worldharness import WATER, build_city, webhook_to

__all__ = ["biller_service"]
pytestmark = pytest.mark.slow
WEBHOOK_WAIT_S = 20.0  # localstripe waits about a second before it delivers an event
PASSWORD = "tram lines at dawn"


async def _reload_until(web: WebPage, text: str) -> None:
    deadline = time.monotonic() + WEBHOOK_WAIT_S
    while text not in await web.page.locator("main").inner_text():
        assert time.monotonic() < deadline, f"never showed {text!r}"
        await asyncio.sleep(0.3)  # polling for localstripe's webhook
        await web.page.reload()


async def _topups_of_card(url: str, card_no: str) -> int:
    engine = db.make_engine(url)
    try:
        async with async_sessionmaker(engine)() as session:
            query = select(func.count()).select_from(Topup).where(Topup.card_no == card_no)
            return (await session.execute(query)).scalar_one()
    finally:
        await engine.dispose()


async def _denied(url: str, card_no: str) -> bool:
    engine = db.make_engine(url)
    try:
        async with async_sessionmaker(engine)() as session:
            return await lists_service.is_denied(session, card_no)
    finally:
        await engine.dispose()


async def test_a_resident_signs_up_tops_up_rides_and_pays_a_water_bill(
    sqlite_url: str,
    tmp_path: Path,
    localstripe: str,
    biller_service: BillerService,
    open_page: OpenPage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the biller's confirmation runs as an eager Celery task that reads the environment
    monkeypatch.setenv("ONECARD_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ONECARD_BILLER_URL", biller_service.url)
    get_settings.cache_clear()
    city = await build_city(sqlite_url, tmp_path)
    shots: dict[str, str] = {}
    with ServerThread(city.settings(localstripe, biller_service.url)) as base:
        webhook_to(localstripe, base, city.webhook_secret)
        web = await open_page("en", DESK_WIDTH)
        page = web.page

        await page.goto(f"{base}/web/signup")
        await page.get_by_label("Email address or mobile number").fill("han.meimei@example.cn")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Create my account").click()
        await page.wait_for_url(f"{base}/web/cards")

        await page.get_by_role("link", name="Link a card").click()
        shots["link"] = page.url
        await page.get_by_label("Card number").fill(city.card_no)
        await page.get_by_label("The balance after its last tap").check()
        await page.get_by_label("Amount (yuan)").fill("1.00")
        await page.get_by_role("button", name="Link the card").click()
        assert "The card is linked to your account." in await page.locator("main").inner_text()
        shots["cards"] = page.url

        await page.get_by_role("link", name="Top up").click()
        shots["topup"] = page.url
        await page.get_by_label("Amount (yuan)").fill("50")
        await page.get_by_label("Bank card (Stripe test card)").check()
        await page.get_by_role("button", name="Pay").dblclick()
        await page.wait_for_url(re.compile(r".*/web/topups/tu_[0-9a-f]{32}$"))
        await _reload_until(web, "Paid: the money goes onto the card at its next tap")
        shots["topup_status"] = page.url
        assert await _topups_of_card(sqlite_url, city.card_no) == 1  # a double click, one charge

        tap = await asyncio.to_thread(city.bus_tap, base)
        assert tap.outcome is TapOutcome.OK, tap.message
        assert await city.clear() == 2  # the load and the ride
        await page.goto(f"{base}/web/cards/{city.card_no}")
        shots["card"] = page.url
        history = await page.locator("table").first.inner_text()
        assert "Load" in history and "+CN¥50.00" in history
        assert "Ride · Line 1 · Old Town Square" in history
        await page.goto(shots["topup_status"])
        assert "On the card" in await page.locator("#topup-state").inner_text()

        bill = biller_service.add_bill(WATER, 4_321)
        await page.get_by_role("link", name="Bills").click()
        await page.get_by_label("Biller").fill(WATER)
        await page.get_by_label("Account number").fill(bill["account_no"])
        await page.get_by_role("button", name="Look up").click()
        assert "CN¥43.21" in await page.locator("main").inner_text()
        shots["bills"] = page.url
        await page.get_by_label("Bank card (Stripe test card)").check()
        await page.get_by_role("button", name="Pay").click()
        await page.wait_for_url(re.compile(r".*/web/bills/payments/bp_[0-9a-f]{32}$"))
        await _reload_until(web, "Open the receipt")
        shots["bill_payment"] = page.url
        await page.get_by_role("link", name="Open the receipt").click()
        assert await page.locator("#receipt-amount").inner_text() == "CN¥43.21"
        shots["receipt"] = page.url

        shots["lost"] = f"{base}/web/cards/{city.card_no}/lost"
        cookies = await web.context.cookies()
        for lang in ("zh", "en"):
            for width in (PHONE_WIDTH, DESK_WIDTH):
                await _shoot_every_page(open_page, base, lang, width, shots, cookies)

        await page.goto(shots["lost"])
        await page.get_by_role("button", name="Report it lost").click()
        assert "The card is reported lost" in await page.locator("main").inner_text()
        assert await _denied(sqlite_url, city.card_no)
        assert web.outside_requests() == []
    get_settings.cache_clear()


async def _shoot_every_page(
    open_page: OpenPage, base: str, lang: str, width: int, shots: dict[str, str], cookies: list
) -> None:
    anonymous = await open_page(lang, width)
    for name in ("signin", "signup"):
        await anonymous.page.goto(f"{base}/web/{name}")
        await anonymous.shoot(name)
    signed_in = await open_page(lang, width)
    await signed_in.context.add_cookies([c for c in cookies if c["name"] != "oc_lang"])
    for name, url in shots.items():
        await signed_in.page.goto(url)
        expected = "zh-CN" if lang == "zh" else "en"
        assert await signed_in.page.locator("html").get_attribute("lang") == expected
        await signed_in.shoot(name)
    assert anonymous.outside_requests() == [] and signed_in.outside_requests() == []
