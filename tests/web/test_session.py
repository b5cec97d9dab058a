"""The web session: an encrypted cookie holding a resident's sign-in. An expired access token is
renewed with the refresh token; a copied cookie used after that ends the sign-in everywhere;
sign-out ends it for good; an altered cookie is nobody's; the cookie's flags."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from clearing.auth.models import ApiToken, Role
from clearing.db.base import utc_now
from clearing.residents.models import RefreshToken
from tests.clearing import residentharness
from tests.clearing.apiharness import World, world
from tests.web.formharness import post, web_sign_in

SIGNIN = "/web/signin?next="


@pytest.fixture
async def resident_world(sqlite_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(
        sqlite_url, tmp_path, password_hash_memory_kib=64, password_hash_time_cost=1
    ) as w:
        yield w


@pytest.fixture(params=["pg_url", "sqlite_url"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(request.param)


@pytest.fixture
async def any_world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(db_url, tmp_path, password_hash_memory_kib=64, password_hash_time_cost=1) as w:
        yield w


def _client(w: World, base: str = "http://127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=w.app), base_url=base)


async def _expire_access_tokens(w: World) -> None:
    async with w.app.state.sessionmaker() as session:
        await session.execute(
            update(ApiToken)
            .where(ApiToken.role == Role.RESIDENT)
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )
        await session.commit()


async def test_an_expired_sign_in_is_renewed_and_a_copied_cookie_ends_it(
    resident_world: World,
) -> None:
    w = resident_world
    login = residentharness.random_email()
    await residentharness.sign_up(w, login)
    async with _client(w) as browser, _client(w) as thief:
        await web_sign_in(browser, login)
        copied = browser.cookies["oc_session"]
        await _expire_access_tokens(w)
        renewed = await browser.get("/web/cards/0000000000000000")  # a 404 page renews too
        assert renewed.status_code == 404  # the refresh token gave the next pair
        assert browser.cookies["oc_session"] != copied
        assert (await browser.get("/web/cards")).status_code == 200
        thief.cookies.set("oc_session", copied, domain="127.0.0.1", path="/web")
        stolen = await thief.get("/web/cards")
        assert stolen.status_code == 303 and stolen.headers["location"].startswith(SIGNIN)
        await _expire_access_tokens(w)
        ended = await browser.get("/web/cards")  # the reuse revoked the whole sign-in
        assert ended.status_code == 303 and ended.headers["location"].startswith(SIGNIN)


async def test_signing_out_ends_the_session_and_an_altered_cookie_is_nobodys(
    resident_world: World,
) -> None:
    w = resident_world
    login = residentharness.random_email()
    await residentharness.sign_up(w, login)
    async with _client(w, "https://127.0.0.1") as browser, _client(w) as replay:
        answer = await post(browser, "/web/signin", login=login, password=residentharness.PASSWORD)
        flags = [c for c in answer.headers.get_list("set-cookie") if c.startswith("oc_session=")]
        assert len(flags) == 1
        for flag in ("HttpOnly", "SameSite=Lax", "Path=/web", "Secure"):
            assert flag in flags[0]
        cookie = browser.cookies["oc_session"]
        assert (await browser.get("/web/cards")).status_code == 200
        altered = cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB")
        replay.cookies.set("oc_session", altered, domain="127.0.0.1", path="/web")
        assert (await replay.get("/web/cards")).status_code == 303
        out = await post(browser, "/web/signout")
        assert out.status_code == 303 and out.headers["location"] == "/web/signin"
        replay.cookies.set("oc_session", cookie, domain="127.0.0.1", path="/web")
        assert (await replay.get("/web/cards")).status_code == 303


async def _parallel_loads(w: World, cookie: str, paths: list[str]) -> list[httpx.Response]:
    """The browser's tabs: each load a client of its own, all with the same cookie, at once."""
    tabs = [_client(w) for _ in paths]
    for tab in tabs:
        tab.cookies.set("oc_session", cookie, domain="127.0.0.1", path="/web")
    try:
        return list(await asyncio.gather(*(t.get(p) for t, p in zip(tabs, paths, strict=True))))
    finally:
        for tab in tabs:
            await tab.aclose()


def _new_cookie(answers: list[httpx.Response]) -> str:
    renewed = [a.cookies["oc_session"] for a in answers if "oc_session" in a.cookies]
    assert len(renewed) == 1  # one load renewed; the others rode on its renewal
    return renewed[0]


async def test_parallel_page_loads_renewing_one_expired_sign_in_all_succeed(
    any_world: World,
) -> None:
    w = any_world
    login = residentharness.random_email()
    await residentharness.sign_up(w, login)
    async with _client(w) as browser:
        await web_sign_in(browser, login)
        cookie = browser.cookies["oc_session"]
        await _expire_access_tokens(w)
        answers = await _parallel_loads(w, cookie, ["/web/cards", "/web/cards", "/web/cards/link"])
        assert [a.status_code for a in answers] == [200, 200, 200], [a.text[:200] for a in answers]
        browser.cookies.set("oc_session", _new_cookie(answers), domain="127.0.0.1", path="/web")
        assert (await browser.get("/web/cards")).status_code == 200
        await _expire_access_tokens(w)
        again = await browser.get("/web/cards")  # the sign-in lives on: renewed once more
        assert again.status_code == 200


async def test_a_copied_cookie_used_after_the_renewal_grace_ends_the_sign_in(
    any_world: World,
) -> None:
    w = any_world
    login = residentharness.random_email()
    await residentharness.sign_up(w, login)
    async with _client(w) as browser, _client(w) as thief:
        await web_sign_in(browser, login)
        copied = browser.cookies["oc_session"]
        await _expire_access_tokens(w)
        assert (await browser.get("/web/cards")).status_code == 200  # renewed
        async with w.app.state.sessionmaker() as session:  # the grace window has passed
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.grace_until.is_not(None))
                .values(grace_until=utc_now() - timedelta(seconds=1))
            )
            await session.commit()
        thief.cookies.set("oc_session", copied, domain="127.0.0.1", path="/web")
        stolen = await thief.get("/web/cards")
        assert stolen.status_code == 303 and stolen.headers["location"].startswith(SIGNIN)
        await _expire_access_tokens(w)
        ended = await browser.get("/web/cards")
        assert ended.status_code == 303 and ended.headers["location"].startswith(SIGNIN)
