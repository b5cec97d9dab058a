"""A bus validator through pcscd + vpcd ("Virtual PCD 00 01", port 35964), and `onecard terminal`."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cardio.records import CardType
from cardio.softcard import SoftCard
from terminals.cli import app
from terminals.journal import Journal, RecordStatus
from terminals.terminal import TapOutcome

REPO = Path(__file__).resolve().parents[2]
READER = os.environ.get("ONECARD_TERMINALS_TEST_READER", "Virtual PCD 00 01")
VPCD_PORT = int(os.environ.get("ONECARD_TERMINALS_TEST_VPCD_PORT", "35964"))
WAIT_S = 5.0

pytestmark = pytest.mark.pcsc


@pytest.fixture(scope="module")
def reader() -> str:
    subprocess.run(
        ["bash", str(REPO / "scripts" / "pcsc.sh"), "start"],
        check=True,
        env={**os.environ, "ONECARD_VPCD_PORT": str(VPCD_PORT)},
    )
    from cardio.pcsc import list_readers

    assert READER in list_readers()
    return READER


class Attached:
    def __init__(self, card: SoftCard, card_file: Path | None = None) -> None:
        from cardio.vpcd import VpcdBridge

        self.card = card
        self.bridge = VpcdBridge(
            card, port=VPCD_PORT, on_change=(lambda: card.save(card_file)) if card_file else None
        )
        self.thread: threading.Thread | None = None

    def insert(self) -> None:
        from cardio.pcsc import wait_for_card
        from cardio.vpcd import serve_in_thread

        self.thread = serve_in_thread(self.bridge)
        wait_for_card(READER, WAIT_S)

    def pull(self) -> None:
        from cardio.pcsc import wait_for_removal

        self.bridge.pull()
        if self.thread is not None:
            self.thread.join(WAIT_S)
        wait_for_removal(READER, WAIT_S)


@pytest.fixture
def attach(reader: str) -> Iterator:
    attached: list[Attached] = []

    def plug(card: SoftCard, card_file: Path | None = None) -> Attached:
        one = Attached(card, card_file)
        one.insert()
        attached.append(one)
        return one

    yield plug
    for one in attached:
        if one.bridge.connected:
            one.pull()


def test_a_tap_through_pcscd_is_priced_debited_and_journaled(attach, validator, issuer, journal):
    from cardio.pcsc import PcscTransport

    card = SoftCard.issue(issuer, "3100000000000501", CardType.STUDENT, balance_fen=1000)
    attach(card)
    transport = PcscTransport.open(READER)
    try:
        result = validator.tap(transport)
    finally:
        transport.close()
    assert result.outcome is TapOutcome.OK and result.record.amount_fen == 100
    assert card.balance_fen == 900
    (record,) = journal.records()
    assert record.status is RecordStatus.COMPLETE and record.rider_category == "student"


def test_card_pulled_mid_tap_through_pcscd_is_recovered_on_return(
    attach, validator, issuer, journal, clock
):
    from cardio.pcsc import PcscTransport

    card = SoftCard.issue(issuer, "3100000000000502", balance_fen=1000)
    attached = attach(card)
    original = card.process

    def pull_after_debit(apdu: bytes) -> bytes:
        response = original(apdu)
        if apdu[1] == 0x54:
            threading.Thread(target=attached.bridge.pull, daemon=True).start()
            raise ConnectionAbortedError("card left during DEBIT")
        return response

    card.process = pull_after_debit  # type: ignore[method-assign]
    transport = PcscTransport.open(READER)
    try:
        first = validator.tap(transport)
    finally:
        transport.close()
    card.process = original  # type: ignore[method-assign]
    assert first.outcome in (TapOutcome.TORN, TapOutcome.CARD_REMOVED)
    if attached.thread is not None:
        attached.thread.join(WAIT_S)
    from cardio.pcsc import wait_for_removal

    wait_for_removal(READER, WAIT_S)
    attach(card)
    clock.advance(seconds=15)
    transport = PcscTransport.open(READER)
    try:
        again = validator.tap(transport)
    finally:
        transport.close()
    assert card.balance_fen == 800
    assert again.outcome is TapOutcome.RECOVERED
    assert [r.status for r in journal.records()] == [RecordStatus.COMPLETE]


def test_onecard_terminal_provision_run_and_journal(attach, issuer, tmp_path):
    from cardio.keystore import write_key_store

    runner = CliRunner()
    keys = tmp_path / "issuer.json"
    write_key_store(issuer, keys)
    out = tmp_path / "bus-7"
    provisioned = runner.invoke(
        app,
        [
            "terminal",
            "provision",
            "--terminal-id",
            "000001000077",
            "--out",
            str(out),
            "--key-store",
            str(keys),
        ],
    )
    assert provisioned.exit_code == 0, provisioned.output
    assert "public key" in provisioned.output
    assert not any("tac" in p.read_text() for p in out.glob("*.json"))
    card_file = tmp_path / "card.json"
    card = SoftCard.issue(issuer, "3100000000000503", balance_fen=1000)
    card.save(card_file)
    attach(card, card_file)
    ran = runner.invoke(
        app,
        [
            "terminal",
            "run",
            "bus",
            "--reader",
            READER,
            "--config",
            str(out / "terminal.toml"),
            "--once",
        ],
    )
    assert ran.exit_code == 0, ran.output
    assert "ok: OK 2.00 balance 8.00" in ran.output
    assert SoftCard.load(card_file).balance_fen == 800
    summary = runner.invoke(app, ["terminal", "journal", "--config", str(out / "terminal.toml")])
    assert "records 1 (seq 1..1), complete 1" in summary.output and "holes []" in summary.output
    journal = Journal(out / "journal.db", "000001000077")
    assert journal.records()[0].tac is not None
    journal.close()


def test_the_sam_can_sit_in_a_reader_slot_like_a_hardware_psam(
    attach, sam, journal, sample_feed, lists, clock, issuer
):
    """The SAM behind PC/SC (reader 00 01) and the card in-process: the same tap, the same record."""
    from cardio.inproc import InProcessTransport
    from cardio.pcsc import PcscTransport
    from terminals.sam import Psam, SamCardSide
    from terminals.terminal import Validator

    attach(SamCardSide(sam))
    slot = PcscTransport.open(READER)
    try:
        bus = Validator(journal, Psam(slot), sample_feed, lists, "3", "east_market", clock=clock)
        card = SoftCard.issue(issuer, "3100000000000504", balance_fen=1000)
        result = bus.tap(InProcessTransport(card))
    finally:
        slot.close()
    assert result.outcome is TapOutcome.OK and card.balance_fen == 800
    assert result.record.terminal_seq == sam.last_serial == 1
