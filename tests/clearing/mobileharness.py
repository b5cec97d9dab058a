"""Helpers of the mobile tests: a world whose app talks to localstripe, residents with cards,
Stripe events signed exactly as Stripe signs them, and balances read from the ledger.

Imported explicitly by the mobile tests. Identifiers are random per test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clearing.books import chart
from clearing.registry import service as registry_service
from clearing.registry.models import CardType
from clearing.registry.schemas import CardIssue
from ledger import account_id
from tests.clearing import residentharness
from tests.clearing.apiharness import World, random_card_no, world

SECRET_KEY = "sk_test_onecard"


@asynccontextmanager
async def stripe_world(url: str, data_dir: Path, localstripe: str, **overrides: Any):
    secret = "whsec_" + secrets.token_hex(16)
    async with world(
        url,
        data_dir,
        stripe_secret_key=SECRET_KEY,
        stripe_api_base=localstripe,
        stripe_webhook_secret=secret,
        **overrides,
    ) as w:
        yield MobileWorld(w, secret)


@dataclass
class Resident:
    resident_id: str
    token: str
    card_no: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class MobileWorld:
    w: World
    webhook_secret: str

    @property
    def client(self):
        return self.w.client

    @property
    def app(self):
        return self.w.app

    async def resident(self, first_load_fen: int = 0) -> Resident:
        """A resident signed up and logged in through the residents API, with a card issued at
        the counter and linked to their account (proved by its balance)."""
        signed_in = await residentharness.new_resident(self.w)
        card_no = await self.issue_card("walk-in", first_load_fen)
        linked = await residentharness.link(self.w, signed_in, card_no, first_load_fen)
        assert linked.status_code == 201, linked.text
        return Resident(signed_in.resident_id, signed_in.access_token, card_no)

    async def issue_card(self, holder: str, first_load_fen: int = 0) -> str:
        card_no = random_card_no()
        async with self.app.state.sessionmaker() as session:
            await registry_service.issue_card(
                session,
                self.app.state.ledger,
                CardIssue(
                    card_no=card_no,
                    card_type=CardType.ADULT,
                    holder_id=holder,
                    holder_name="Han Meimei",
                    deposit_fen=2000,
                    first_load_fen=first_load_fen,
                ),
                "test",
            )
            await session.commit()
        return card_no

    async def topup(self, resident: Resident, amount_fen: int, **fields: Any):
        body = {
            "card_no": resident.card_no,
            "amount_fen": amount_fen,
            "request_id": secrets.token_hex(8),
            "payment_method_type": "card",
            "payment_method": "pm_card_visa",
            **fields,
        }
        return await self.client.post("/v1/me/topups", json=body, headers=resident.auth)

    def gateway(self):
        from clearing.mobile.gateway import StripeGateway

        return StripeGateway(self.app.state.settings)

    async def deliver(self, event: dict[str, Any], *, secret: str | None = None, **kw: Any):
        payload, header = signed(event, secret or self.webhook_secret, **kw)
        return await self.client.post(
            "/v1/stripe/webhook",
            content=payload,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )

    async def balance(self, name: str) -> int:
        states = await self.app.state.ledger.lookup_accounts([account_id(name)])
        return states[0].balance.credit_balance if states else 0

    async def pending_fen(self, card_no: str) -> int:
        return await self.balance(chart.card_pending(card_no))


def stripe_event(event_type: str, obj: Any) -> dict[str, Any]:
    """An event as Stripe sends it (id, type, created, data.object)."""
    plain = json.loads(json.dumps(obj, default=lambda o: o.to_dict()))
    return {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": plain},
    }


def signed(event: dict[str, Any], secret: str, *, at: int | None = None) -> tuple[bytes, str]:
    """The body and the Stripe-Signature header, as Stripe makes them: t=<unix>,v1=HMAC-SHA256
    of "<t>.<body>" with the endpoint's secret."""
    payload = json.dumps(event).encode()
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={t},v1={mac}"


@asynccontextmanager
async def session_of(mw: MobileWorld) -> AsyncIterator[Any]:
    async with mw.app.state.sessionmaker() as session:
        yield session
