"""Every page of the resident app, walked with every kind of visitor: not signed in (the
sign-in page), signed in as another resident (the 404 page, never the owner's data), the
owner (the page). Every form refuses bad input next to the field, in Chinese and in English,
keeping what was typed; every POST without its CSRF token is refused; the same pay form sent
twice charges once.

Through the service's ASGI app with httpx (no browser needed to read answers): fast.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import unescape

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import func, select
from starlette.routing import Mount

from clearing import db
from clearing.mobile.models import Topup
from clearing.registry import service as registry_service
from clearing.registry.schemas import ParticipantCreate
from clearing.settings import ESCROW_ACCOUNT_DEFAULT, get_settings
from tests.clearing import residentharness
from tests.clearing.billerharness import BillerService, biller_service
from tests.clearing.mobileharness import MobileWorld, stripe_event, stripe_world
from tests.web.formharness import post, web_sign_in
from tests.web.worldharness import WATER

__all__ = ["biller_service"]
BASE = "http://127.0.0.1"
# Pages anyone may open (signing in, the language switch, the files of the pages).
PUBLIC = {"/", "/lang/{code}", "/signin", "/signup", "/signout", "/static"}
ZH, EN = {"accept-language": "zh-CN,zh"}, {"accept-language": "en"}


@dataclass
class Owner:
    """A resident with a card, a top-up, a paid bill and its receipt, signed in on the web."""

    client: httpx.AsyncClient
    card_no: str
    ids: dict[str, str]


@dataclass
class Walk:
    mw: MobileWorld
    owner: Owner
    other: httpx.AsyncClient  # another resident, signed in on the web
    anonymous: httpx.AsyncClient


def _client(mw: MobileWorld, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=mw.app), base_url=BASE, headers=headers or EN
    )


async def _water(mw: MobileWorld) -> None:
    async with mw.app.state.sessionmaker() as session:
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


async def _owner(mw: MobileWorld, biller: BillerService) -> Owner:
    """Made through the API (and a Stripe event signed as Stripe signs it)."""
    who = await residentharness.new_resident(mw.w)
    card_no = await mw.issue_card("walk-in", 500)
    assert (await residentharness.link(mw.w, who, card_no, 500)).status_code == 201
    auth = {"Authorization": f"Bearer {who.access_token}"}
    topup = await mw.client.post(
        "/v1/me/topups",
        json={
            "card_no": card_no,
            "amount_fen": 1000,
            "request_id": "walk-1",
            "payment_method": "pm_card_visa",
        },
        headers=auth,
    )
    assert topup.status_code == 201, topup.text
    bill = biller.add_bill(WATER, 1_234)
    paying = await mw.client.post(
        "/v1/me/bill-payments",
        json={
            "biller": WATER,
            "account_no": bill["account_no"],
            "bill_id": bill["bill_id"],
            "amount_fen": 1_234,
            "request_id": "walk-bill",
            "payment_method": "pm_card_visa",
        },
        headers=auth,
    )
    assert paying.status_code == 201, paying.text
    intent = await mw.gateway().client.v1.payment_intents.retrieve_async(
        paying.json()["payment_intent_id"]
    )
    assert (await mw.deliver(stripe_event("payment_intent.succeeded", intent))).status_code == 200
    receipts = (await mw.client.get("/v1/me/receipts", headers=auth)).json()
    client = _client(mw)
    await web_sign_in(client, who.login)
    ids = {
        "card_no": card_no,
        "topup_id": topup.json()["topup_id"],
        "payment_id": paying.json()["payment"]["id"],
        "receipt_id": receipts[0]["id"],
    }
    return Owner(client, card_no, ids)


@pytest.fixture(scope="module")
def walk_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{(tmp_path_factory.mktemp('walk') / 'onecard.db').as_posix()}"
    db.upgrade(url)
    return url


@pytest.fixture(scope="module")
async def walk(
    walk_db: str,
    tmp_path_factory: pytest.TempPathFactory,
    localstripe: str,
    biller_service: BillerService,
) -> AsyncIterator[Walk]:
    """One world for the module (the tests read it; the one that unlinks the card is last)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ONECARD_DATABASE_URL", walk_db)  # the eager Celery task reads it
        env.setenv("ONECARD_BILLER_URL", biller_service.url)
        get_settings.cache_clear()
        overrides = {
            "biller_url": biller_service.url,
            "password_hash_memory_kib": 64,
            "password_hash_time_cost": 1,
        }
        data_dir = tmp_path_factory.mktemp("walk-data")
        async with stripe_world(walk_db, data_dir, localstripe, **overrides) as mw:
            await _water(mw)
            owner = await _owner(mw, biller_service)
            other_login = residentharness.random_email()
            await residentharness.sign_up(mw.w, other_login)
            other, anonymous = _client(mw), _client(mw)
            await web_sign_in(other, other_login)
            try:
                yield Walk(mw, owner, other, anonymous)
            finally:
                for client in (owner.client, other, anonymous):
                    await client.aclose()
    get_settings.cache_clear()


def _resident_routes(mw: MobileWorld) -> list[tuple[str, str]]:
    web = next(r for r in mw.app.routes if isinstance(r, Mount) and r.path == "/web").app
    routes: list[tuple[str, str]] = []
    pending = list(web.routes)
    while pending:
        route = pending.pop(0)
        included = getattr(route, "original_router", None)  # FastAPI's wrapper of a router
        if included is not None:
            pending.extend(included.routes)
            continue
        path = getattr(route, "path", "")
        if path in PUBLIC or path.startswith("/console"):
            continue  # the finance console has its own walk: tests/web/test_console_routes.py
        assert isinstance(route, APIRoute), f"{path}: a page the walk does not know"
        routes.extend((method, path) for method in sorted(route.methods) if method != "HEAD")
    return routes


def _fill(path: str, ids: dict[str, str]) -> str:
    return "/web" + re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


async def test_every_page_is_the_owners_alone(walk: Walk) -> None:
    routes = _resident_routes(walk.mw)
    assert len(routes) >= 12  # cards, link, card, unlink, lost, top-up, bills, pay, receipt...
    for method, template in routes:
        path = _fill(template, walk.owner.ids)
        if method == "GET":
            mine = await walk.owner.client.get(path)
            assert mine.status_code == 200, (path, mine.text[:300])
            strangers = await walk.other.get(path)
            anonymous = await walk.anonymous.get(path)
        else:
            strangers = await post(walk.other, path)
            anonymous = await post(walk.anonymous, path)
            unguarded = await walk.owner.client.post(path, data={})
            assert unguarded.status_code == 403, path  # no CSRF token: refused before the page
            assert "This form has expired" in unguarded.text
        assert anonymous.status_code == 303, (method, path)
        signin = "/web/signin?next=" if method == "GET" else "/web/signin"
        assert anonymous.headers["location"].startswith(signin), (method, path)
        if template in ("/cards", "/cards/link", "/bills", "/bills/pay"):
            # their own (empty) pages, or their own refused form: nothing of the owner's
            assert strangers.status_code in (200, 422), (method, path)
        else:
            assert strangers.status_code == 404, (method, path, strangers.status_code)
            assert "Page not found" in strangers.text
        shown = _main(strangers.text)  # (the language links repeat the address typed)
        assert walk.owner.card_no not in shown, (method, path)
        assert walk.owner.ids["receipt_id"] not in shown, (method, path)


def _main(html: str) -> str:
    found = re.search(r"<main[^>]*>(.*)</main>", html, re.S)
    assert found, "a page without its main content"
    return found.group(1)


def _error_next_to(html: str, name: str) -> str:
    found = re.search(rf'<p class="error" id="{name}-error">(.*?)</p>', html, re.S)
    assert found, f"no message next to {name}"
    field = re.search(rf'<input id="f-{name}"[^>]*aria-describedby="[^"]*{name}-error', html)
    assert field, f"the {name} field does not point at its message"
    return unescape(found.group(1))


def _value_of(html: str, name: str) -> str:
    found = re.search(rf'<input id="f-{name}" name="{name}" type="\w+" value="([^"]*)"', html)
    assert found, name
    return unescape(found.group(1))


@pytest.mark.parametrize(
    ("lang", "wrong_card", "too_big", "no_biller"),
    [
        (
            EN,
            "A card number has 16 digits.",
            "At most CN¥500.00 at a time.",
            "There is no biller with this code.",
        ),
        (ZH, "卡号为 16 位数字。", "每次最多 ¥500.00。", "没有使用此代码的收费单位。"),
    ],
    ids=["en", "zh"],
)
async def test_bad_input_is_refused_next_to_the_field_keeping_what_was_typed(
    walk: Walk, lang: dict[str, str], wrong_card: str, too_big: str, no_biller: str
) -> None:
    client = walk.owner.client
    client.headers.update(lang)
    try:
        await _refused_everywhere(client, walk.owner.card_no, wrong_card, too_big, no_biller)
    finally:
        client.headers.update(EN)


async def _refused_everywhere(
    client: httpx.AsyncClient, card: str, wrong_card: str, too_big: str, no_biller: str
) -> None:
    link = await post(
        client, "/web/cards/link", card_no="12345", proof_kind="balance", proof_amount="5"
    )
    assert link.status_code == 422
    assert _error_next_to(link.text, "card_no") == wrong_card
    assert _value_of(link.text, "card_no") == "12345"
    assert _value_of(link.text, "proof_amount") == "5"
    key = secrets.token_urlsafe(12)
    topup = await post(
        client, f"/web/cards/{card}/topup", amount="600", method="card", form_key=key
    )
    assert topup.status_code == 422
    assert _error_next_to(topup.text, "amount") == too_big
    assert _value_of(topup.text, "amount") == "600"
    shape = await post(
        client, f"/web/cards/{card}/topup", amount="12.345", method="card", form_key=key
    )
    assert _value_of(shape.text, "amount") == "12.345"
    assert _error_next_to(shape.text, "amount")  # three decimals are not an amount
    lookup = await client.get("/web/bills", params={"biller": "no-such", "account_no": "A1"})
    assert lookup.status_code == 422
    assert _error_next_to(lookup.text, "biller") == no_biller
    assert _value_of(lookup.text, "account_no") == "A1"
    signup = await post(client, "/web/signup", login="not a login", password="x" * 12)
    assert signup.status_code == 422
    assert _error_next_to(signup.text, "login")
    assert _value_of(signup.text, "login") == "not a login"
    assert _value_of(signup.text, "password") == ""  # a password is never sent back


async def _topups(walk: Walk) -> int:
    async with walk.mw.app.state.sessionmaker() as session:
        query = select(func.count()).select_from(Topup).where(Topup.card_no == walk.owner.card_no)
        return (await session.execute(query)).scalar_one()


async def test_the_same_pay_form_sent_twice_charges_once(walk: Walk) -> None:
    before = await _topups(walk)
    path = f"/web/cards/{walk.owner.card_no}/topup"
    form = {"amount": "20", "method": "card", "form_key": secrets.token_urlsafe(12)}
    first, second = [await post(walk.owner.client, path, **form) for _ in range(2)]
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert await _topups(walk) == before + 1
    fresh = await post(walk.owner.client, path, **{**form, "form_key": secrets.token_urlsafe(12)})
    assert fresh.status_code == 303 and fresh.headers["location"] != first.headers["location"]
    assert await _topups(walk) == before + 2


async def test_unlinking_a_card_takes_it_off_my_pages(walk: Walk) -> None:
    client, card = walk.owner.client, walk.owner.card_no
    unlinked = await post(client, f"/web/cards/{card}/unlink")
    assert (
        unlinked.status_code == 303 and unlinked.headers["location"] == "/web/cards?done=unlinked"
    )
    cards = await client.get("/web/cards?done=unlinked")
    assert "The card is no longer linked to your account." in cards.text
    assert card not in _main(cards.text)
    assert (await client.get(f"/web/cards/{card}")).status_code == 404
    assert (await client.get(f"/web/cards/{card}/topup")).status_code == 404
