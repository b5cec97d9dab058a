"""Fixtures of the card layer.

- `key_store`: a fresh random issuer key store file (0600) for the session.
- `pcscd_reader`: starts pcscd with the vpcd driver through scripts/pcsc.sh (idempotent: it leaves a
  running pcscd alone) and returns the reader the cardio tests own, "Virtual PCD 00 00" on TCP 35963
  (the terminals tests use "Virtual PCD 00 01"; override with ONECARD_TEST_READER / _VPCD_PORT).
- `attached_card`: a software card plugged into that reader through the vpcd bridge (a thread), waited
  for with CardRequest.waitforcard(); pulled out and waited gone at the end.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cardio.keystore import KeyStore, create_key_store
from cardio.purse import Purse
from cardio.records import CardType
from cardio.softcard import SoftCard

REPO = Path(__file__).resolve().parents[2]
READER = os.environ.get("ONECARD_TEST_READER", "Virtual PCD 00 00")
VPCD_PORT = int(os.environ.get("ONECARD_TEST_VPCD_PORT", "35963"))
CARD_NO = "3100000000000042"
WAIT_S = 5.0


@pytest.fixture(scope="session")
def key_store(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    return create_key_store(tmp_path_factory.mktemp("keys") / "keys.json")


@pytest.fixture
def soft_card(key_store: KeyStore) -> SoftCard:
    return SoftCard.issue(key_store, CARD_NO, CardType.STUDENT, "Han Meimei", balance_fen=5_000)


@pytest.fixture(scope="session")
def pcscd_reader() -> str:
    """pcscd + vpcd running (started if needed); the reader name of the cardio tests."""
    subprocess.run(
        ["bash", str(REPO / "scripts" / "pcsc.sh"), "start"],
        check=True,
        env={**os.environ, "ONECARD_VPCD_PORT": str(VPCD_PORT)},
    )
    from cardio.pcsc import list_readers

    readers = list_readers()
    assert READER in readers, f"{READER!r} not in {readers}"
    return READER


@dataclass
class AttachedCard:
    """A software card in a vpcd reader, with the physical gestures a test needs."""

    card: SoftCard
    reader: str
    port: int
    bridge: object = None
    thread: threading.Thread | None = None
    transports: list = field(default_factory=list)

    def insert(self) -> None:
        from cardio.pcsc import wait_for_card
        from cardio.vpcd import VpcdBridge, serve_in_thread

        self.bridge = VpcdBridge(self.card, port=self.port, on_change=self._on_change)
        self.thread = serve_in_thread(self.bridge)
        wait_for_card(self.reader, WAIT_S)

    def _on_change(self) -> None:
        hook = getattr(self, "after_change", None)
        if hook is not None:
            hook()

    def pull(self, wait: bool = True) -> None:
        """The card leaves the reader; with wait=True, until pcscd has noticed."""
        from cardio.pcsc import wait_for_removal

        self.bridge.pull()
        if self.thread is not None:
            self.thread.join(WAIT_S)
            assert not self.thread.is_alive()
        if wait:
            wait_for_removal(self.reader, WAIT_S)

    def purse(self) -> Purse:
        from cardio.pcsc import PcscTransport

        transport = PcscTransport.open(self.reader)
        self.transports.append(transport)
        return Purse(transport)

    def close(self) -> None:
        from cardio.pcsc import wait_for_removal

        for transport in self.transports:
            transport.close()
        if self.bridge is not None:
            if self.bridge.connected:
                self.pull(wait=False)
            wait_for_removal(self.reader, WAIT_S)  # leave the reader empty for the next test


@pytest.fixture
def attached_card(pcscd_reader: str, soft_card: SoftCard) -> Iterator[AttachedCard]:
    attached = AttachedCard(soft_card, pcscd_reader, VPCD_PORT)
    attached.insert()
    try:
        yield attached
    finally:
        attached.close()
