"""A top-up paid on the phone (through localstripe, its webhook delivered by localstripe itself)
is written onto the card at the next bus tap through pcscd/vpcd, and the load's TAC confirms it
in clearing: card-pending -> card, the top-up delivered."""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy.ext.asyncio import async_sessionmaker

from cardio.keystore import create_key_store
from cardio.records import CardType
from cardio.softcard import SoftCard
from clearing import db
from clearing.api.app import create_app
from clearing.books import chart
from clearing.engine.service import open_engine
from clearing.registry import service as registry_service
from clearing.registry.models import ParticipantKind, TerminalKind
from clearing.registry.schemas import CardIssue, ParticipantCreate, TerminalCreate
from clearing.settings import ESCROW_ACCOUNT_DEFAULT, Settings
from ledger import account_id
from ledger.writer import Ledger
from terminals.client import ClearingClient
from terminals.fares.feed import load_sample_feed
from terminals.journal import Journal
from terminals.kiosk import LoadKiosk
from terminals.lists import ListStore
from terminals.sam import LoadHost, Psam, SoftwareSam, provision_sam_keys
from terminals.signing import new_credential
from terminals.terminal import TapOutcome, Validator
from terminals.uploader import Uploader
from tests.terminals.test_pcsc_terminal import READER, attach, reader  # noqa: F401

pytestmark = pytest.mark.pcsc

TERMINAL_ID = "000001000090"
LIST_SEED_HEX = "33" * 32
WEBHOOK_WAIT_S = 15.0  # localstripe waits 1 s before it delivers an event


async def _seed(url: str, public_key_hex: str, card_no: str) -> None:
    engine = db.make_engine(url)
    async with await Ledger.open(url) as ledger:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            await registry_service.create_participant(
                session,
                ParticipantCreate(
                    code="plateau-bus",
                    name="Plateau City Bus Company",
                    kind=ParticipantKind.BUS_OPERATOR,
                    commission_bp=150,
                    bank_account="6222020200112233445",
                    bank_name="ICBC Plateau City",
                ),
                escrow_account=ESCROW_ACCOUNT_DEFAULT,
            )
            await registry_service.register_terminal(
                session,
                TerminalCreate(
                    terminal_id=TERMINAL_ID,
                    participant="plateau-bus",
                    kind=TerminalKind.BUS,
                    line="1",
                    public_key=public_key_hex,
                ),
            )
            await registry_service.issue_card(
                session,
                ledger,
                CardIssue(
                    card_no=card_no,
                    card_type=CardType.ADULT.name.lower(),
                    holder_id="walk-in",
                    holder_name="Han Meimei",
                    deposit_fen=0,
                    first_load_fen=100,
                ),
                "test",
            )
            await session.commit()
    await engine.dispose()


def _resident_with_card(base: str, card_no: str, balance_fen: int) -> str:
    """Sign up and log in through the residents API, link the card (its balance proves it);
    the resident's access token."""
    login = {"login": f"han-{secrets.token_hex(4)}@example.cn", "password": "tram lines at dawn"}
    assert httpx.post(f"{base}/v1/residents", json=login).status_code == 201
    token = httpx.post(f"{base}/v1/auth/login", json=login).json()["access_token"]
    proof = {"kind": "balance", "amount_fen": balance_fen}
    linked = httpx.post(
        f"{base}/v1/me/cards",
        json={"card_no": card_no, "proof": proof},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert linked.status_code == 201, linked.text
    return token


def _serve(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(1000):
        if server.started or not thread.is_alive():
            break
        time.sleep(0.01)  # polling for the server to start
    assert server.started
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


async def _balances(url: str, card_no: str) -> tuple[int, int]:
    async with await Ledger.open(url) as ledger:
        ids = [account_id(chart.card(card_no)), account_id(chart.card_pending(card_no))]
        found = {s.id: s.balance.credit_balance for s in await ledger.lookup_accounts(ids)}
    return found.get(ids[0], 0), found.get(ids[1], 0)


async def _clear(url: str, key_store: Path) -> dict:
    async with open_engine(url, key_store) as engine:
        summary = await engine.clear_pending(trigger="test")
    return {"posted": summary.posted, "quarantined": summary.quarantined}


def test_a_phone_top_up_is_on_the_card_after_the_next_bus_tap(
    attach,  # noqa: F811
    sqlite_url: str,
    tmp_path: Path,
    localstripe: str,
) -> None:
    from cardio.pcsc import PcscTransport

    key_store = tmp_path / "issuer.json"
    store = create_key_store(key_store)
    credential = new_credential(TERMINAL_ID)
    card_no = "31" + "".join(str(secrets.randbelow(10)) for _ in range(14))
    asyncio.run(_seed(sqlite_url, credential.public_key_hex, card_no))
    secret = "whsec_" + secrets.token_hex(16)
    settings = Settings(
        database_url=sqlite_url,
        data_dir=tmp_path / "var",
        key_store=key_store,
        list_signing_key=LIST_SEED_HEX,
        stripe_secret_key="sk_test_onecard",
        stripe_api_base=localstripe,
        stripe_webhook_secret=secret,
    )
    server, thread, base = _serve(settings)
    try:
        # localstripe itself signs and delivers payment_intent.succeeded to the service
        hook = httpx.post(
            f"{localstripe}/_config/webhooks/onecard-pcsc-test",  # one id: a re-run replaces it
            data={"url": f"{base}/v1/stripe/webhook", "secret": secret},
        )
        assert hook.status_code == 200, hook.text
        auth = {"Authorization": f"Bearer {_resident_with_card(base, card_no, 100)}"}
        body = {
            "card_no": card_no,
            "amount_fen": 5000,
            "request_id": "phone-1",
            "payment_method": "pm_card_visa",
        }
        created = httpx.post(f"{base}/v1/me/topups", json=body, headers=auth)
        assert created.status_code == 201, created.text
        topup_url = f"{base}/v1/me/topups/{created.json()['topup_id']}"
        deadline = time.monotonic() + WEBHOOK_WAIT_S
        while httpx.get(topup_url, headers=auth).json()["state"] != "succeeded":
            assert time.monotonic() < deadline, "localstripe's webhook never arrived"
            time.sleep(0.1)  # polling for localstripe's delivery
        assert asyncio.run(_balances(sqlite_url, card_no)) == (100, 5000)

        # the bus: fetches the action list, then the card's next tap writes the load
        keys = provision_sam_keys(
            store, bytes.fromhex(TERMINAL_ID), tmp_path / "sam-keys.json", with_load=True
        )
        sam = SoftwareSam(keys, tmp_path / "sam-serial")
        journal = Journal(tmp_path / "journal.db", TERMINAL_ID)
        lists = ListStore(tmp_path / "lists.json", _list_public_key())
        uploader = Uploader(journal, lists, lambda: ClearingClient(base, credential))
        uploader.sync_once()
        loader = LoadKiosk(journal, LoadHost(keys), sam.serials, lists)
        bus = Validator(journal, Psam(sam), load_sample_feed(), lists, "1", "old_town")
        bus.loader = loader
        card = SoftCard.issue(store, card_no, CardType.ADULT, balance_fen=100)
        attach(card)
        transport = PcscTransport.open(READER)
        try:
            result = bus.tap(transport)
        finally:
            transport.close()
        assert result.outcome is TapOutcome.OK, result.message
        assert "(loaded 50.00)" in result.message
        load, ride = journal.records()
        assert load.kind.value == "load" and load.amount_fen == 5000
        assert load.load_id == httpx.get(topup_url, headers=auth).json()["load_id"]
        assert card.balance_fen == 100 + 5000 - ride.amount_fen

        uploader.sync_once()
        cleared = asyncio.run(_clear(sqlite_url, key_store))
        assert cleared == {"posted": 2, "quarantined": 0}
        on_card, pending = asyncio.run(_balances(sqlite_url, card_no))
        assert (on_card, pending) == (100 + 5000 - ride.amount_fen, 0)
        assert httpx.get(topup_url, headers=auth).json()["state"] == "delivered"
        journal.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _list_public_key() -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(LIST_SEED_HEX)).public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
