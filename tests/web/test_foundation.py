"""The web app's foundation in a real browser: sign-up, the language switch, the security
headers, the CSRF refusal and the form that keeps what was typed, with no request leaving
127.0.0.1."""

from __future__ import annotations

import httpx
import pytest

from tests.web.conftest import DESK_WIDTH, PHONE_WIDTH, OpenPage

pytestmark = pytest.mark.slow
PASSWORD = "tram lines at dawn"


async def test_sign_up_shows_my_cards_in_the_chosen_language(
    web_service: tuple[str, object], open_page: OpenPage
) -> None:
    base, _ = web_service
    web = await open_page("zh", PHONE_WIDTH)
    await web.page.goto(f"{base}/web/signup")
    assert await web.page.locator("html").get_attribute("lang") == "zh-CN"
    await web.shoot("signup")
    await web.page.get_by_label("电子邮箱或手机号码").fill("li@example.cn")
    await web.page.get_by_label("密码").fill("short")
    await web.page.get_by_role("button", name="创建我的账户").click()
    # refused next to the field, in Chinese, what was typed kept
    assert "请使用 10 到 128 个字符" in await web.page.locator("#password-error").inner_text()
    assert await web.page.get_by_label("电子邮箱或手机号码").input_value() == "li@example.cn"
    await web.page.get_by_label("密码").fill("tram lines at dawn")
    await web.page.get_by_role("button", name="创建我的账户").click()
    await web.page.wait_for_url(f"{base}/web/cards")
    assert await web.page.locator("h1").inner_text() == "我的卡"
    await web.page.get_by_role("link", name="English").click()
    assert await web.page.locator("h1").inner_text() == "My cards"
    assert await web.page.locator("html").get_attribute("lang") == "en"
    assert web.outside_requests() == []


async def test_a_form_posted_without_its_token_is_refused_in_the_page_language(
    web_service: tuple[str, object], open_page: OpenPage
) -> None:
    base, _ = web_service
    async with httpx.AsyncClient(base_url=base) as client:
        page = await client.get("/web/signin", headers={"accept-language": "en"})
        for header in ("content-security-policy", "x-content-type-options", "referrer-policy"):
            assert header in page.headers
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        refused = await client.post(
            "/web/signin",
            data={"login": "li@example.cn", "password": "tram lines at dawn", "csrf_token": "x"},
            headers={"accept-language": "zh-CN"},
        )
        assert refused.status_code == 403
        assert "表单已失效" in refused.text
    web = await open_page("en", DESK_WIDTH)
    await web.page.goto(f"{base}/web/signin")
    await web.context.clear_cookies()  # the token in the page no longer matches a cookie
    await web.page.get_by_role("button", name="Sign in").click()
    assert await web.page.locator("h1").inner_text() == "This form has expired"
    assert web.outside_requests() == []


async def test_sign_up_and_in_with_the_keyboard_alone_and_javascript_off(
    web_service: tuple[str, object], open_page: OpenPage
) -> None:
    base, _ = web_service
    web = await open_page("en", PHONE_WIDTH, javascript=False)
    page = web.page
    await page.goto(f"{base}/web/signup")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to the content"
    for _ in range(10):  # the brand, the language link, then the form's first field
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "f-login":
            break
    assert await page.evaluate("document.activeElement.id") == "f-login"
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focus is visible
    await page.keyboard.type("wang@example.cn")
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{base}/web/cards")
    await page.get_by_role("button", name="Sign out").press("Enter")
    await page.wait_for_url(f"{base}/web/signin")
    await page.get_by_label("Email address or mobile number").fill("wang@example.cn")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Password").press("Enter")
    await page.wait_for_url(f"{base}/web/cards")
    assert await page.locator("h1").inner_text() == "My cards"
    assert web.outside_requests() == []
