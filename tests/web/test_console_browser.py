"""The finance console in a real browser (Debian's chromium through Playwright): ann signs in,
releases a quarantined record, asks for a write-off and to close today early; bob, a second
officer, approves both; today is settled and its file downloads. Every page is shot at phone
and desk widths in Chinese and English (var/test-artifacts/screens/), and no page asks
anything of another host."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import expect

from clearing.settings import Settings
from clearing.settlement import service as settlement_service
from tests.clearing.apiharness import LIST_KEY_HEX
from tests.web.conftest import (
    DESK_WIDTH,
    PHONE_WIDTH,
    OpenPage,
    ServerThread,
    WebPage,
    web_settings,
)
from tests.web.consoleharness import STAFF_PASSWORD, Seeded, seed_console


@pytest.fixture
def console_service(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, Settings, Seeded]]:
    settings = web_settings(sqlite_url, tmp_path / "data", list_signing_key=LIST_KEY_HEX)
    seeded: list[Seeded] = []
    # seeded on a loop of its own: the test's loop is pytest-asyncio's, and the seed's ledger
    # must be closed before the service opens the database
    thread = threading.Thread(
        target=lambda: seeded.append(asyncio.run(seed_console(sqlite_url, tmp_path, settings)))
    )
    thread.start()
    thread.join()
    with ServerThread(settings) as base:
        yield base, settings, seeded[0]


async def _sign_in(open_page: OpenPage, base: str, who: str, lang: str, width: int) -> WebPage:
    web = await open_page(lang, width)
    await web.page.goto(f"{base}/web/console")
    await expect(web.page.locator("#f-username")).to_be_visible()
    await web.page.locator("#f-username").fill(who)
    await web.page.locator("#f-password").fill(STAFF_PASSWORD)
    await web.page.locator("main form button[type=submit]").click()
    await expect(web.page.locator("h1")).to_have_text(
        "Today at a glance" if lang == "en" else "今日概览"
    )
    return web


async def test_two_officers_release_write_off_and_settle_the_day(
    console_service: tuple[str, Settings, Seeded], open_page: OpenPage
) -> None:
    base, settings, seeded = console_service
    released, written_off = seeded.held
    ann = await _sign_in(open_page, base, "ann", "en", DESK_WIDTH)
    page = ann.page
    await page.get_by_role("link", name="Quarantine", exact=True).click()
    await page.get_by_role("link", name=f"#{released}", exact=True).click()
    empty = page.get_by_role("button", name="Release", exact=True)
    await empty.click()  # no reason: refused next to the field, nothing released
    await expect(page.locator("#release_note-error")).to_be_visible()
    await page.locator("#f-release_note").fill("card registered late")
    await page.get_by_role("button", name="Release", exact=True).click()
    await expect(page.locator("main")).to_contain_text("released")
    await expect(page.locator("main")).to_contain_text("card registered late")

    await page.goto(f"{base}/web/console/quarantine/{written_off}")
    await page.locator("#f-write_off_note").fill("forged TAC, reported to the police")
    await page.get_by_role("button", name="Ask for a write-off").click()
    await expect(page.locator("main")).to_contain_text("write-off asked")
    await page.get_by_role("link", name="Settlement", exact=True).click()
    await page.locator("#f-note").fill("audit visit tomorrow morning")
    await page.get_by_role("button", name="Ask to close").click()
    await expect(page.locator("h1")).to_have_text("Approvals")
    await expect(page.locator("main")).to_contain_text("You asked for this")
    assert await page.get_by_role("button", name="Approve and carry out").count() == 0

    bob = await _sign_in(open_page, base, "bob", "en", DESK_WIDTH)
    await bob.page.get_by_role("link", name="Approvals", exact=True).click()
    for _ in range(2):  # the write-off and the early settlement
        await bob.page.get_by_role("button", name="Approve and carry out").first.click()
        await expect(bob.page.locator("h1")).to_have_text("Approvals")
    assert await bob.page.get_by_role("button", name="Approve and carry out").count() == 0
    await expect(bob.page.locator("main table")).to_contain_text("Approved")
    await bob.page.goto(f"{base}/web/console/quarantine/{written_off}")
    await expect(bob.page.locator("main")).to_contain_text("written_off")
    await expect(bob.page.locator("main")).to_contain_text("finance:bob")

    today = settlement_service.calendar_of(settings).business_day(datetime.now(UTC))
    await bob.page.get_by_role("link", name="Settlement", exact=True).click()
    await bob.page.locator(f"a[href$='/settlements/{today.isoformat()}']").click()
    await expect(bob.page.locator("main table")).to_contain_text("bus-1")
    link = bob.page.get_by_role("link", name=f"settlement-{today.isoformat()}.csv")
    downloaded = await bob.page.request.get(base + (await link.get_attribute("href") or ""))
    assert downloaded.ok and "bus-1" in await downloaded.text()
    assert ann.outside_requests() == [] and bob.outside_requests() == []


PAGES = (
    "/web/console",
    "/web/console/quarantine",
    "/web/console/quarantine/{held}",
    "/web/console/approvals",
    "/web/console/settlements",
    "/web/console/settlements/{day}",
    "/web/console/statements?participant=bus-1",
    "/web/console/claims",
    "/web/console/breaks",
    "/web/console/breaks/{break_id}",
    "/web/console/charts",
)


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_every_console_page_is_shot_at_phone_and_desk_widths(
    console_service: tuple[str, Settings, Seeded], open_page: OpenPage, lang: str
) -> None:
    base, _settings, seeded = console_service
    for width in (PHONE_WIDTH, DESK_WIDTH):
        signin = await open_page(lang, width)
        await signin.page.goto(f"{base}/web/console/signin")
        await signin.shoot("console-signin")
        web = await _sign_in(open_page, base, "bob", lang, width)
        for path in PAGES:
            url = base + path.format(
                held=seeded.held[0], day=seeded.settled_day, break_id=seeded.break_id
            )
            answer = await web.page.goto(url)
            assert answer is not None and answer.status == 200, url
            name = "console" + path.split("?")[0].removeprefix("/web/console").replace("/", "-")
            for key in ("{held}", "{day}", "{break_id}"):
                name = name.replace(key, "one")
            shot = await web.shoot(name)
            assert shot.stat().st_size > 0
        # the phone width never scrolls sideways on the glance page
        await web.page.goto(f"{base}/web/console")
        overflow = await web.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, (lang, width, overflow)
        assert web.outside_requests() == [] and signin.outside_requests() == []
