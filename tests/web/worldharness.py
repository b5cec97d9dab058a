"""A small city for the web tests: a bus operator with one validator on line 1, a water biller,
a card in a resident's pocket (an in-process virtual card), localstripe delivering its own
webhooks to the service, and the bus that writes pending loads at the next tap.

Imported explicitly by the end-to-end tests.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.ext.asyncio import async_sessionmaker

from cardio.inproc import InProcessTransport
from cardio.keystore import KeyStore, create_key_store
from cardio.records import CardType
from cardio.softcard import SoftCard
from clearing import db
from clearing.engine.service import open_engine
from clearing.registry import service as registry_service
from clearing.registry.models import ParticipantKind, TerminalKind
from clearing.registry.schemas import CardIssue, ParticipantCreate, TerminalCreate
from clearing.settings import ESCROW_ACCOUNT_DEFAULT, Settings
from ledger.writer import Ledger
from terminals.client import ClearingClient
from terminals.fares.feed import load_sample_feed
from terminals.journal import Journal
from terminals.kiosk import LoadKiosk
from terminals.lists import ListStore
from terminals.sam import LoadHost, Psam, SoftwareSam, provision_sam_keys
from terminals.signing import TerminalCredential, new_credential
from terminals.terminal import TapResult, Validator
from terminals.uploader import Uploader
from tests.web.conftest import web_settings

TERMINAL_ID = "000001000091"
LIST_SEED_HEX = "44" * 32
WATER = "city-water"
FIRST_LOAD_FEN = 100
LINE, STOP = "1", "old_town"  # "Old Town Square" in the sample feed


@dataclass
class City:
    url: str
    tmp: Path
    key_store: Path
    store: KeyStore
    credential: TerminalCredential
    card_no: str
    card: SoftCard
    webhook_secret: str

    def settings(self, localstripe: str, biller_url: str) -> Settings:
        return web_settings(
            self.url,
            self.tmp / "data",
            key_store=self.key_store,
            list_signing_key=LIST_SEED_HEX,
            stripe_secret_key="sk_test_onecard",
            stripe_api_base=localstripe,
            stripe_webhook_secret=self.webhook_secret,
            biller_url=biller_url,
        )

    def bus_tap(self, base: str) -> TapResult:
        """The bus fetches its lists (the action list has the load), the card taps once, the
        bus uploads its records."""
        keys = provision_sam_keys(
            self.store, bytes.fromhex(TERMINAL_ID), self.tmp / "sam-keys.json", with_load=True
        )
        sam = SoftwareSam(keys, self.tmp / "sam-serial")
        journal = Journal(self.tmp / "journal.db", TERMINAL_ID)
        try:
            lists = ListStore(self.tmp / "lists.json", _list_public_key())
            uploader = Uploader(journal, lists, lambda: ClearingClient(base, self.credential))
            uploader.sync_once()
            bus = Validator(journal, Psam(sam), load_sample_feed(), lists, LINE, STOP)
            bus.loader = LoadKiosk(journal, LoadHost(keys), sam.serials, lists)
            result = bus.tap(InProcessTransport(self.card))
            uploader.sync_once()
            return result
        finally:
            journal.close()

    async def clear(self) -> int:
        async with open_engine(self.url, self.key_store) as engine:
            summary = await engine.clear_pending(trigger="test")
        return summary.posted


def webhook_to(localstripe: str, base: str, secret: str) -> None:
    """localstripe signs and delivers its events to the service, as Stripe would."""
    hook = httpx.post(
        f"{localstripe}/_config/webhooks/onecard-web-test",  # one id: a re-run replaces it
        data={"url": f"{base}/v1/stripe/webhook", "secret": secret},
    )
    hook.raise_for_status()


async def build_city(url: str, tmp: Path) -> City:
    key_store = tmp / "issuer.json"
    store = create_key_store(key_store)
    credential = new_credential(TERMINAL_ID)
    card_no = "31" + "".join(str(secrets.randbelow(10)) for _ in range(14))
    engine = db.make_engine(url)
    async with await Ledger.open(url) as ledger:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            for code, name, kind in (
                ("plateau-bus", "Plateau City Bus Company", ParticipantKind.BUS_OPERATOR),
                (WATER, "City Water Co.", ParticipantKind.UTILITY),
            ):
                await registry_service.create_participant(
                    session,
                    ParticipantCreate(
                        code=code,
                        name=name,
                        kind=kind,
                        commission_bp=150,
                        bank_account="6222020200112233" + str(len(code)).zfill(3),
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
                    line=LINE,
                    public_key=credential.public_key_hex,
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
                    first_load_fen=FIRST_LOAD_FEN,
                ),
                "test",
            )
            await session.commit()
    await engine.dispose()
    card = SoftCard.issue(store, card_no, CardType.ADULT, balance_fen=FIRST_LOAD_FEN)
    return City(
        url, tmp, key_store, store, credential, card_no, card, "whsec_" + secrets.token_hex(16)
    )


def _list_public_key() -> str:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(LIST_SEED_HEX)).public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
