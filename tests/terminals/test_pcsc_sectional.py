# ruff: noqa: F811  (pytest fixtures imported from test_pcsc_terminal)
"""Two-tap sectional fares on a bus, through pcscd + vpcd ("Virtual PCD 00 01"): board, alight,
board again without a tap-off; and a validator killed between the two taps of a leg."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cardio.records import TRANSIT_RECORD_ID, JourneyState, TransitRecord
from cardio.softcard import SoftCard
from terminals.capp import decode_transit_record
from terminals.fares.feed import load_feed
from terminals.fares.sectional import vehicle_tag
from terminals.journal import Journal, RecordStatus
from terminals.sam import Psam, SoftwareSam, provision_sam_keys
from terminals.terminal import TapOutcome, Validator

from .test_pcsc_terminal import READER, attach, reader  # noqa: F401 (fixtures)

pytestmark = pytest.mark.pcsc

REPO = Path(__file__).resolve().parents[2]
SECTIONAL = Path(__file__).parent / "feeds" / "sectional"
TERMINAL_ID = "000001000050"
START = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # 09:00 in Beijing


@pytest.fixture(scope="module")
def sectional():
    return load_feed(SECTIONAL)


def card_state(card: SoftCard, feed):
    raw = card.state.transit_records[TRANSIT_RECORD_ID]
    return TransitRecord.parse(raw), decode_transit_record(raw, feed)


def last_log(card: SoftCard) -> tuple[int, int, int]:
    """(counter, amount, transaction type) of the card's newest log record 0018."""
    entry = card.state.log[0]
    return int.from_bytes(entry[0:2], "big"), int.from_bytes(entry[5:9], "big"), entry[9]


def tap(validator: Validator, stop: str, clock: dict, at: datetime, vehicle: str | None = None):
    from cardio.pcsc import PcscTransport

    validator.move_to("900", stop, vehicle)
    clock["now"] = at
    transport = PcscTransport.open(READER)
    try:
        return validator.tap(transport)
    finally:
        transport.close()


def test_board_alight_and_board_again_without_tap_off(
    attach, issuer, sam, journal, lists, sectional
):
    card = SoftCard.issue(issuer, "3100000000000901", balance_fen=2000)
    attach(card)
    clock = {"now": START}
    bus = Validator(journal, Psam(sam), sectional, lists, "900", "s1", clock=lambda: clock["now"])

    boarded = tap(bus, "s1", clock, START)
    assert boarded.outcome is TapOutcome.OK and boarded.message.startswith("boarded")
    standard, state = card_state(card, sectional)
    assert standard.state is JourneyState.BOARDED and standard.fare_max_fen == 400
    assert state.open_leg is not None and state.open_leg.board_stop_id == "s1"
    assert last_log(card) == (1, 0, 0x09) and card.balance_fen == 2000
    (record,) = journal.records()
    assert (record.amount_fen, record.route_id, record.stop_id) == (0, "900", "s1")
    assert record.status is RecordStatus.COMPLETE and record.tac is not None

    alighted = tap(bus, "s4", clock, START + timedelta(minutes=25))
    assert alighted.outcome is TapOutcome.OK and alighted.record.amount_fen == 300
    standard, state = card_state(card, sectional)
    assert standard.state is JourneyState.ALIGHTED and state.open_leg is None
    assert last_log(card) == (2, 300, 0x09) and card.balance_fen == 1700
    assert [r.amount_fen for r in journal.records()] == [0, 300]
    assert journal.records()[-1].stop_id == "s4"

    boarded = tap(bus, "s3", clock, START + timedelta(minutes=60))
    forgot = tap(bus, "s3", clock, START + timedelta(hours=6))  # next boarding, 6 h later
    assert forgot.outcome is TapOutcome.OK
    assert [r.amount_fen for r in forgot.charged] == [300, 0]  # z2's maximum, then the boarding
    unfinished = forgot.charged[0]
    assert (unfinished.route_id, unfinished.stop_id) == ("900", "s3")
    assert unfinished.fare_rule.startswith("unfinished:")
    assert card.balance_fen == 1400 and last_log(card) == (5, 0, 0x09)
    assert [r.status for r in journal.records()] == [RecordStatus.COMPLETE] * 5
    _, state = card_state(card, sectional)
    assert state.open_leg is not None and state.open_leg.board_at == START + timedelta(hours=6)


@pytest.fixture
def worker_dir(issuer, tmp_path: Path) -> Path:
    provision_sam_keys(issuer, bytes.fromhex(TERMINAL_ID), tmp_path / "sam-keys.json")
    return tmp_path


def test_a_validator_killed_between_the_two_taps_of_a_leg(attach, issuer, worker_dir, sectional):
    card = SoftCard.issue(issuer, "3100000000000902", balance_fen=1000)
    attach(card)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.terminals.sectional_worker",
            str(worker_dir),
            READER,
            "s2",
            START.isoformat(),
            "bus-17",
            "--hold",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        boarded = json.loads(proc.stdout.readline())
        assert proc.stdout.readline().strip() == "holding"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert boarded["outcome"] == "ok" and boarded["charged"] == [0]
    _, state = card_state(card, sectional)
    assert state.open_leg is not None and state.open_leg.board_stop_id == "s2"
    assert state.open_leg.vehicle_tag == vehicle_tag("bus-17")  # the same bus after the restart

    # The validator comes back (same journal, same SAM serial) and takes the tap-off.
    from terminals.lists import ListStore
    from terminals.sam import load_sam_keys

    sam = SoftwareSam(load_sam_keys(worker_dir / "sam-keys.json"), worker_dir / "sam-serial")
    journal = Journal(worker_dir / "journal.db", TERMINAL_ID)
    try:
        journal.reconcile(sam.last_serial)
        assert [(r.amount_fen, r.status) for r in journal.records()] == [(0, RecordStatus.COMPLETE)]
        clock = {"now": START}
        bus = Validator(
            journal,
            Psam(sam),
            sectional,
            ListStore(None, "00" * 32),
            "900",
            "s6",
            vehicle_id="bus-17",
            clock=lambda: clock["now"],
        )
        alighted = tap(bus, "s6", clock, START + timedelta(minutes=50))
        assert alighted.outcome is TapOutcome.OK and alighted.record.amount_fen == 400
        assert card.balance_fen == 600 and last_log(card) == (2, 400, 0x09)
        assert [r.amount_fen for r in journal.records()] == [0, 400]
        assert [r.terminal_seq for r in journal.records()] == [1, 2]
        _, state = card_state(card, sectional)
        assert state.open_leg is None
    finally:
        journal.close()


def test_boarding_another_bus_of_the_line_without_a_tap_off(
    attach, issuer, sam, journal, lists, sectional
):
    """Board bus 17, alight, board bus 17 again and forget the tap-off, then board bus 23 of the
    same line 30 minutes later: the forgotten leg costs its maximum, then a boarding."""
    card = SoftCard.issue(issuer, "3100000000000903", balance_fen=2000)
    attach(card)
    clock = {"now": START}
    bus = Validator(
        journal,
        Psam(sam),
        sectional,
        lists,
        "900",
        "s1",
        vehicle_id="bus-17",
        clock=lambda: clock["now"],
    )
    boarded = tap(bus, "s1", clock, START)
    assert boarded.outcome is TapOutcome.OK and [r.amount_fen for r in boarded.charged] == [0]
    standard, state = card_state(card, sectional)
    assert standard.state is JourneyState.BOARDED and state.open_leg is not None
    assert state.open_leg.vehicle_tag != 0
    assert last_log(card) == (1, 0, 0x09) and card.balance_fen == 2000
    assert [(r.amount_fen, r.stop_id) for r in journal.records()] == [(0, "s1")]

    alighted = tap(bus, "s3", clock, START + timedelta(minutes=20))
    assert [r.amount_fen for r in alighted.charged] == [300]
    standard, state = card_state(card, sectional)
    assert standard.state is JourneyState.ALIGHTED and state.open_leg is None
    assert last_log(card) == (2, 300, 0x09) and card.balance_fen == 1700
    assert [(r.amount_fen, r.stop_id) for r in journal.records()] == [(0, "s1"), (300, "s3")]

    again = tap(bus, "s3", clock, START + timedelta(minutes=40))
    assert [r.amount_fen for r in again.charged] == [0]
    _, state = card_state(card, sectional)
    assert state.open_leg is not None and state.open_leg.board_stop_id == "s3"
    assert last_log(card) == (3, 0, 0x09)

    other = tap(bus, "s4", clock, START + timedelta(minutes=70), vehicle="bus-23")
    assert other.outcome is TapOutcome.OK
    assert [r.amount_fen for r in other.charged] == [300, 0]  # s3's maximum, then boarding
    assert "no tap-off on line 900" in other.message
    unfinished = other.charged[0]
    assert (unfinished.route_id, unfinished.stop_id) == ("900", "s3")
    assert unfinished.fare_rule.startswith("unfinished:")
    assert card.balance_fen == 1400 and last_log(card) == (5, 0, 0x09)
    standard, state = card_state(card, sectional)
    assert standard.state is JourneyState.BOARDED and standard.fare_max_fen == 300
    assert state.open_leg is not None and state.open_leg.board_stop_id == "s4"
    assert state.open_leg.vehicle_tag == vehicle_tag("bus-23") != vehicle_tag("bus-17")
    assert [r.amount_fen for r in journal.records()] == [0, 300, 0, 300, 0]
    assert [r.status for r in journal.records()] == [RecordStatus.COMPLETE] * 5
