"""Residents over HTTP for tests: sign up and log in a resident, issue a card at the counter.

Imported explicitly by the residents' tests (and by top-ups and bills, which act for a
resident): every identifier is random, so tests share one PostgreSQL database.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from tests.clearing.apiharness import World, random_card_no

PASSWORD = "tram lines at dawn"


@dataclass
class SignedIn:
    resident_id: str
    login: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def random_email() -> str:
    return f"res-{secrets.token_hex(5)}@example.cn"


async def sign_up(w: World, login: str | None = None, password: str = PASSWORD) -> str:
    login = login or random_email()
    response = await w.client.post("/v1/residents", json={"login": login, "password": password})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def log_in(w: World, login: str, password: str = PASSWORD) -> SignedIn:
    response = await w.client.post("/v1/auth/login", json={"login": login, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    return SignedIn(body["resident_id"], login, body["access_token"], body["refresh_token"])


async def new_resident(w: World) -> SignedIn:
    login = random_email()
    await sign_up(w, login)
    return await log_in(w, login)


async def issue_card(w: World, *, first_load_fen: int = 5000, deposit_fen: int = 2000) -> str:
    """A card issued at the counter (admin), paid in cash: its first load is `first_load_fen`."""
    card_no = random_card_no()
    body = {
        "card_no": card_no,
        "card_type": "adult",
        "holder_id": "walk-in",
        "holder_name": "Han Meimei",
        "deposit_fen": deposit_fen,
        "first_load_fen": first_load_fen,
        "paid_by": "cash",
    }
    response = await w.client.post("/v1/cards", json=body, headers=w.auth("admin"))
    assert response.status_code == 201, response.text
    return card_no


async def link(
    w: World, who: SignedIn, card_no: str, amount_fen: int, kind: str = "balance"
) -> object:
    return await w.client.post(
        "/v1/me/cards",
        json={"card_no": card_no, "proof": {"kind": kind, "amount_fen": amount_fen}},
        headers=who.auth,
    )
