"""Power cut: a validator process SIGKILLed at random points during a stream of taps.

After restart, every tap a card paid for is in the journal exactly once, the terminal sequence
has no holes, and every "OK" a passenger saw is a complete record.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cardio.keystore import KeyStore
from cardio.records import CardType
from cardio.softcard import SoftCard
from terminals.journal import Journal, RecordStatus
from terminals.sam import SerialStore, provision_sam_keys

from .conftest import TERMINAL_ID

REPO = Path(__file__).resolve().parents[2]
WORKER = [sys.executable, "-m", "tests.terminals.powercut_worker"]
KILLED = -signal.SIGKILL


def run_worker(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WORKER, str(directory), *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_sigkill_at_random_points_loses_no_paid_tap_and_leaves_no_hole(
    issuer: KeyStore, tmp_path: Path
):
    rng = random.Random(20261130)
    provision_sam_keys(issuer, bytes.fromhex(TERMINAL_ID), tmp_path / "sam-keys.json")
    (tmp_path / "cards").mkdir()
    opening = {}
    for n, card_type in enumerate((CardType.ADULT, CardType.STUDENT, CardType.ADULT)):
        card = SoftCard.issue(issuer, f"31000000000001{n:02d}", card_type, balance_fen=100_000)
        card.save(tmp_path / "cards" / f"{n}.json")
        opening[card.card_no] = 100_000

    seen_ok: list[dict] = []
    # Self-inflicted SIGKILL before or after an exact APDU (card or SAM): first every point of
    # startup and of one whole tap (4 + 14 points), then random points later in the stream.
    points = list(range(1, 21)) + [rng.randint(21, 200) for _ in range(8)]
    for point in points:
        seed = str(rng.randint(0, 10**6))
        done = run_worker(tmp_path, "taps", "--die-after-apdus", str(point), "--seed", seed)
        assert done.returncode == KILLED, done.stderr
        seen_ok += [json.loads(line) for line in done.stdout.splitlines()]
    # And a SIGKILL from outside, at whatever moment the stream is in.
    proc = subprocess.Popen(
        [*WORKER, str(tmp_path), "taps", "--seed", "7"], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    for _ in range(rng.randint(3, 25)):
        seen_ok.append(json.loads(proc.stdout.readline()))
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=60)
    seen_ok += [json.loads(line) for line in rest.splitlines() if line.strip()]
    assert proc.returncode == KILLED

    settle = run_worker(tmp_path, "settle")
    assert settle.returncode == 0, settle.stderr

    journal = Journal(tmp_path / "journal.db", TERMINAL_ID)
    records = journal.records()
    last_serial = SerialStore(tmp_path / "sam-serial").last
    assert [r.terminal_seq for r in records] == list(range(1, last_serial + 1)), (
        "sequence has holes"
    )
    assert journal.unresolved_grey() == []
    assert len(seen_ok) > 20
    for seen in seen_ok:
        record = journal.record(seen["seq"])
        assert (
            record is not None
            and record.status is RecordStatus.COMPLETE
            and record.card_no == seen["card"]
        )
    for path in sorted((tmp_path / "cards").glob("*.json")):
        card = SoftCard.load(path)
        paid = [
            r for r in records if r.card_no == card.card_no and r.status is RecordStatus.COMPLETE
        ]
        # One complete record per debit the card made, no more, no less.
        assert sorted(r.card_counter for r in paid) == list(range(card.offline_counter))
        assert sum(r.amount_fen for r in paid) == opening[card.card_no] - card.balance_fen
    journal.close()
