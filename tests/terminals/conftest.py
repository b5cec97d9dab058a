"""Fixtures of the terminal tests: an issuer key store, a provisioned software SAM, cards, a journal.

Everything is real (software card, software SAM, SQLite journal on disk); nothing is mocked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cardio.inproc import InProcessTransport
from cardio.keystore import KeyStore, create_key_store
from cardio.records import CardType
from cardio.softcard import SoftCard
from terminals.fares.feed import FareFeed, load_sample_feed
from terminals.journal import Journal
from terminals.lists import ListStore
from terminals.sam import Psam, SoftwareSam, provision_sam_keys
from terminals.signing import canonical_list_bytes
from terminals.terminal import Validator

TERMINAL_ID = "000001000050"


@pytest.fixture(scope="session")
def sample_feed() -> FareFeed:
    return load_sample_feed()


@pytest.fixture(scope="session")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    return create_key_store(tmp_path_factory.mktemp("issuer") / "keys.json")


@dataclass
class ListServer:
    """The server's list-signing key, to make signed deltas like the clearing service does."""

    private_key: Ed25519PrivateKey

    @property
    def public_key_hex(self) -> str:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    def delta(
        self, kind: str, since: int, version: int, added: list, removed: list, full: bool = False
    ) -> dict:
        body = {
            "list": kind,
            "since": since,
            "version": version,
            "added": added,
            "removed": removed,
            "full": full,
            "signed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        body["signature"] = self.private_key.sign(canonical_list_bytes(body)).hex()
        return json.loads(json.dumps(body))


@pytest.fixture(scope="session")
def list_server() -> ListServer:
    return ListServer(Ed25519PrivateKey.generate())


@pytest.fixture
def sam(issuer: KeyStore, tmp_path: Path) -> SoftwareSam:
    keys = provision_sam_keys(
        issuer, bytes.fromhex(TERMINAL_ID), tmp_path / "sam-keys.json", with_load=True
    )
    return SoftwareSam(keys, tmp_path / "sam-serial")


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal(tmp_path / "journal.db", TERMINAL_ID)
    yield j
    j.close()


@pytest.fixture
def lists(list_server: ListServer, tmp_path: Path) -> ListStore:
    return ListStore(tmp_path / "lists.json", list_server.public_key_hex)


class Clock:
    """A settable clock (terminals take `clock`; nothing sleeps)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.now = self.now + timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 30, 0, 0, tzinfo=UTC))  # 08:00 in Beijing, a Monday


@pytest.fixture
def make_card(issuer: KeyStore) -> Callable[..., InProcessTransport]:
    counter = iter(range(1, 10_000))

    def make(
        card_type: CardType = CardType.ADULT, balance_fen: int = 5000, **kwargs: object
    ) -> InProcessTransport:
        card_no = f"31000000{next(counter):08d}"
        card = SoftCard.issue(issuer, card_no, card_type, balance_fen=balance_fen, **kwargs)
        return InProcessTransport(card)

    return make


@pytest.fixture
def validator(
    journal: Journal, sam: SoftwareSam, sample_feed: FareFeed, lists: ListStore, clock: Clock
) -> Validator:
    return Validator(journal, Psam(sam), sample_feed, lists, "1", "old_town", clock=clock)
