"""The city demo's residents on the phone: top-ups through Stripe (localstripe, started by
scripts/demo.sh), paid by card, posted by localstripe's own signed webhook, waiting on the
action list for the card's next tap. Never runs outside the demo's own data directory.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass

import httpx

from clearing.settings import get_settings

TOPUP_AMOUNTS_FEN = (2000, 5000, 10_000)
WEBHOOKS_WAIT_S = 30.0  # localstripe waits 1 s before it delivers each event


@dataclass
class TopupReport:
    asked: int = 0
    paid: int = 0
    amount_fen: int = 0
    refused: int = 0
    stripe: str = ""


def stripe_environment() -> None:
    """Point the demo's service at localstripe with a fresh webhook secret (before the app)."""
    port = os.environ.get("ONECARD_LOCALSTRIPE_PORT", "8420")
    os.environ["ONECARD_STRIPE_API_BASE"] = f"http://127.0.0.1:{port}"
    os.environ["ONECARD_STRIPE_SECRET_KEY"] = "sk_test_onecard_demo"
    os.environ["ONECARD_STRIPE_WEBHOOK_SECRET"] = "whsec_" + secrets.token_hex(16)
    get_settings.cache_clear()


def _resident_token(client: httpx.Client, n: int, card_no: str, balance_fen: int) -> str | None:
    """Resident n signs up and logs in through the residents API and links the card (its
    balance proves it); their access token, or None if any step was refused."""
    login = {"login": f"resident-{n:05d}-{secrets.token_hex(3)}@demo.onecard.cn"}
    login["password"] = f"demo phone {secrets.token_hex(6)}"
    if client.post("/v1/residents", json=login).status_code != 201:
        return None
    signed_in = client.post("/v1/auth/login", json=login)
    if signed_in.status_code != 200:
        return None
    token = signed_in.json()["access_token"]
    proof = {"kind": "balance", "amount_fen": balance_fen}
    linked = client.post(
        "/v1/me/cards",
        json={"card_no": card_no, "proof": proof, "label": "demo"},
        headers={"Authorization": f"Bearer {token}"},
    )
    return token if linked.status_code == 201 else None


def residents_top_up(server_url: str, cards: list[tuple[str, int]]) -> TopupReport:
    """The holder of each (card_no, balance_fen) signs up, links the card and tops it up once by
    card; waits until Stripe's webhooks posted them."""
    settings = get_settings()
    report = TopupReport(stripe=settings.stripe_api_base)
    try:
        hook = httpx.post(
            f"{settings.stripe_api_base}/_config/webhooks/onecard-demo",
            data={
                "url": f"{server_url}/v1/stripe/webhook",
                "secret": settings.stripe_webhook_secret.get_secret_value(),
            },
            timeout=5,
        )
        hook.raise_for_status()
    except httpx.HTTPError:
        report.stripe = ""  # no localstripe: the demo goes on without top-ups
        return report
    created = []
    with httpx.Client(base_url=server_url, timeout=30) as client:
        for n, (card_no, balance_fen) in enumerate(cards):
            token = _resident_token(client, n, card_no, balance_fen)
            report.asked += 1
            if token is None:
                report.refused += 1
                continue
            auth = {"Authorization": f"Bearer {token}"}
            amount = TOPUP_AMOUNTS_FEN[n % len(TOPUP_AMOUNTS_FEN)]
            body = {
                "card_no": card_no,
                "amount_fen": amount,
                "request_id": f"demo-{n}",
                "payment_method": "pm_card_visa",
            }
            answer = client.post("/v1/me/topups", json=body, headers=auth)
            if answer.status_code != 201:
                report.refused += 1
                continue
            created.append((answer.json()["topup_id"], auth, amount))
        deadline = time.monotonic() + WEBHOOKS_WAIT_S
        waiting = list(created)
        while waiting and time.monotonic() < deadline:
            still = []
            for topup_id, auth, amount in waiting:
                state = client.get(f"/v1/me/topups/{topup_id}", headers=auth).json()["state"]
                if state == "succeeded":
                    report.paid += 1
                    report.amount_fen += amount
                else:
                    still.append((topup_id, auth, amount))
            waiting = still
            if waiting:
                time.sleep(0.2)  # polling for localstripe's deliveries
    return report
