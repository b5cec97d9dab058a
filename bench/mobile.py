"""Mobile top-ups benchmark: top-ups per second end to end (create + confirm at localstripe,
localstripe's own signed webhook, the posting) at 16 concurrent residents; the webhook's handling
alone per second (signed events posted at 16 at once); and, in the same run as the ceiling, the
ledger's single-transfer rate at 16 clients on the same database. One JSON line at the end.

Needs PostgreSQL (ONECARD_DATABASE_URL=postgresql+asyncpg://...) and localstripe (started here
with scripts/stripe.sh; port ONECARD_LOCALSTRIPE_PORT). localstripe waits 1 s before it
delivers each event: the end-to-end figure is measured with every resident paying back to back,
so that wait overlaps and the rate is what the service sustains, not one resident's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import secrets
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from bench.ledger import Bench, percentile
from clearing import db
from clearing.api.app import create_app
from clearing.mobile.models import Topup, TopupState
from clearing.registry import service as registry_service
from clearing.registry.models import CardType
from clearing.registry.schemas import CardIssue
from clearing.settings import Settings
from ledger.writer import Ledger

REPO = Path(__file__).resolve().parents[1]
RESIDENTS = 16
TOPUP_FEN = 100
LINK_BALANCE_FEN = 100  # each card's first load: its holder names it to link the card
POSTED_WAIT_S = 120.0


def _serve(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("the clearing service did not start")
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


async def _residents(url: str, base: str, run: str) -> list[tuple[str, str]]:
    """(card_no, token) of each resident, one card each: issued at the counter, then the resident
    signs up, logs in and links it through the residents API (its balance proves it)."""
    engine = db.make_engine(url)
    out = []
    async with await Ledger.open(url) as ledger:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            for k in range(RESIDENTS):
                resident = f"bench-{run}-{k}"
                card_no = (
                    f"39{int(hashlib.sha256(resident.encode()).hexdigest(), 16) % 10**14:014d}"
                )
                await registry_service.issue_card(
                    session,
                    ledger,
                    CardIssue(
                        card_no=card_no,
                        card_type=CardType.ADULT,
                        holder_id="walk-in",
                        holder_name=resident,
                        deposit_fen=0,
                        first_load_fen=LINK_BALANCE_FEN,
                    ),
                    "bench",
                )
                out.append(card_no)
            await session.commit()
    await engine.dispose()
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        return [(card_no, await _link(client, card_no)) for card_no in out]


async def _link(client: httpx.AsyncClient, card_no: str) -> str:
    login = {"login": f"bench-{card_no}-{secrets.token_hex(3)}@bench.onecard.cn"}
    login["password"] = f"bench phone {secrets.token_hex(6)}"
    (await client.post("/v1/residents", json=login)).raise_for_status()
    signed_in = await client.post("/v1/auth/login", json=login)
    signed_in.raise_for_status()
    token = signed_in.json()["access_token"]
    proof = {"kind": "balance", "amount_fen": LINK_BALANCE_FEN}
    linked = await client.post(
        "/v1/me/cards",
        json={"card_no": card_no, "proof": proof},
        headers={"Authorization": f"Bearer {token}"},
    )
    linked.raise_for_status()
    return token


async def _count_posted(url: str, card_nos: list[str]) -> int:
    engine = db.make_engine(url, pooled=False)
    async with engine.connect() as conn:
        query = select(func.count()).where(
            Topup.card_no.in_(card_nos), Topup.state == TopupState.SUCCEEDED
        )
        value = (await conn.execute(query)).scalar_one()
    await engine.dispose()
    return int(value)


async def _create_all(
    base: str, residents: list[tuple[str, str]], per_resident: int, confirm: bool
) -> tuple[list[dict], list[float]]:
    latencies: list[float] = []
    created: list[dict] = []

    async def resident(card_no: str, token: str) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            for _ in range(per_resident):
                body = {
                    "card_no": card_no,
                    "amount_fen": TOPUP_FEN,
                    "request_id": secrets.token_hex(8),
                    "payment_method": "pm_card_visa" if confirm else None,
                }
                start = time.perf_counter()
                answer = await client.post("/v1/me/topups", json=body, headers=auth)
                latencies.append(time.perf_counter() - start)
                if answer.status_code != 201:
                    raise SystemExit(f"top-up refused: {answer.text[:300]}")
                created.append(answer.json())

    await asyncio.gather(*(resident(c, t) for c, t in residents))
    return created, latencies


async def end_to_end(url: str, base: str, residents, per_resident: int) -> dict[str, float]:
    card_nos = [c for c, _ in residents]
    before = await _count_posted(url, card_nos)
    start = time.perf_counter()
    created, latencies = await _create_all(base, residents, per_resident, confirm=True)
    deadline = time.monotonic() + POSTED_WAIT_S
    while await _count_posted(url, card_nos) - before < len(created):
        if time.monotonic() > deadline:
            raise SystemExit("localstripe's webhooks did not all arrive")
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - start
    return {
        "e2e_topups": len(created),
        "e2e_topups_per_s": len(created) / elapsed,
        "create_p50_ms": percentile(latencies, 0.5) * 1e3,
        "create_p99_ms": percentile(latencies, 0.99) * 1e3,
    }


def _signed(event: dict, secret: str) -> tuple[bytes, str]:
    payload = json.dumps(event).encode()
    t = int(time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={t},v1={mac}"


async def webhooks_alone(base: str, residents, per_resident: int, secret: str) -> dict[str, float]:
    """Top-ups created unconfirmed (no Stripe event follows), then their succeeded events signed
    here as Stripe signs them and posted 16 at a time: the webhook's own work."""
    created, _ = await _create_all(base, residents, per_resident, confirm=False)
    events = []
    for topup in created:
        intent = {
            "id": topup["payment_intent_id"],
            "object": "payment_intent",
            "status": "succeeded",
            "amount": topup["amount_fen"],
            "latest_charge": None,
            "metadata": {"kind": "topup", "topup_id": topup["topup_id"]},
        }
        events.append(
            {
                "id": "evt_" + secrets.token_hex(12),
                "type": "payment_intent.succeeded",
                "data": {"object": intent},
            }
        )
    queue = list(events)
    latencies: list[float] = []

    async def sender() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            while queue:
                payload, header = _signed(queue.pop(), secret)
                start = time.perf_counter()
                answer = await client.post(
                    "/v1/stripe/webhook",
                    content=payload,
                    headers={"Stripe-Signature": header, "Content-Type": "application/json"},
                )
                latencies.append(time.perf_counter() - start)
                if answer.status_code != 200 or answer.json()["outcome"] != "applied":
                    raise SystemExit(f"webhook refused: {answer.text[:300]}")

    start = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(RESIDENTS)))
    elapsed = time.perf_counter() - start
    return {
        "webhook_events": len(events),
        "webhooks_per_s": len(events) / elapsed,
        "webhook_p50_ms": percentile(latencies, 0.5) * 1e3,
        "webhook_p99_ms": percentile(latencies, 0.99) * 1e3,
    }


async def ledger_ceiling(url: str, per_client: int) -> float:
    bench = Bench(url, 1.0)
    async with await Ledger.open(url) as led:
        accounts = await bench.setup(led, "mobile", 1000)
        tps, _, _, _ = await bench.singles(led, accounts, RESIDENTS, per_client)
    return tps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-resident", type=int, default=25, help="Top-ups per resident.")
    args = parser.parse_args()
    url = os.environ.get("ONECARD_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        raise SystemExit("set ONECARD_DATABASE_URL=postgresql+asyncpg://user@host/db")
    port = os.environ.get("ONECARD_LOCALSTRIPE_PORT", "8420")
    subprocess.run(["bash", str(REPO / "scripts" / "stripe.sh"), "start"], check=True)
    localstripe = f"http://127.0.0.1:{port}"
    db.upgrade(url)
    console = Console(stderr=True)
    secret = "whsec_" + secrets.token_hex(16)
    settings = Settings(
        database_url=url,
        data_dir=Path("var/bench-mobile"),
        stripe_secret_key="sk_test_bench",
        stripe_api_base=localstripe,
        stripe_webhook_secret=secret,
    )
    server, thread, base = _serve(settings)
    try:
        hook = httpx.post(
            f"{localstripe}/_config/webhooks/onecard-bench",
            data={"url": f"{base}/v1/stripe/webhook", "secret": secret},
        )
        hook.raise_for_status()
        residents = asyncio.run(_residents(url, base, secrets.token_hex(3)))
        console.print(f"end to end: {RESIDENTS} residents x {args.per_resident} top-ups")
        figures = asyncio.run(end_to_end(url, base, residents, args.per_resident))
        console.print("webhook alone")
        figures |= asyncio.run(webhooks_alone(base, residents, args.per_resident, secret))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    console.print("ledger single transfers, 16 clients (the ceiling)")
    ceiling = asyncio.run(ledger_ceiling(url, 100))
    figures["ledger_single_c16_tps"] = ceiling
    figures["e2e_ratio_to_ledger"] = figures["e2e_topups_per_s"] / ceiling
    figures["webhook_ratio_to_ledger"] = figures["webhooks_per_s"] / ceiling
    figures["residents"] = RESIDENTS
    console.print(
        f"top-ups end to end {figures['e2e_topups_per_s']:.1f}/s, webhook alone "
        f"{figures['webhooks_per_s']:.1f}/s, ledger single transfers {ceiling:.0f}/s "
        f"(ratios {figures['e2e_ratio_to_ledger']:.1%}, {figures['webhook_ratio_to_ledger']:.1%})"
    )
    print(json.dumps({k: round(v, 3) for k, v in figures.items()}, sort_keys=True))


if __name__ == "__main__":
    main()
