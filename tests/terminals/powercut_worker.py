"""A validator process for the power-cut test: taps cards until it is killed (or told to stop).

    python -m tests.terminals.powercut_worker DIR taps [--die-after-apdus N] [--seed S]
    python -m tests.terminals.powercut_worker DIR settle

The cards live in DIR/cards/*.json and are saved after every APDU that changed them, before the
answer goes back (like a real card, whose EEPROM write finishes before it answers). Every tap
the passenger saw as paid is printed as one JSON line. `--die-after-apdus N` sends SIGKILL to
this very process at the N-th APDU (card or SAM): a power cut at an exact, random point.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cardio.purse import Purse
from cardio.softcard import SoftCard
from terminals.fares.feed import load_sample_feed
from terminals.journal import Journal
from terminals.lists import ListStore
from terminals.sam import Psam, SoftwareSam, load_sam_keys
from terminals.terminal import Validator

TERMINAL_ID = "000001000050"


class Killer:
    def __init__(self, die_after: int | None) -> None:
        self.left = die_after

    def tick(self) -> None:
        if self.left is None:
            return
        self.left -= 1
        if self.left <= 0:
            os.kill(os.getpid(), signal.SIGKILL)


class SavingTransport:
    """An in-process reader whose card is persisted after every state change, before answering."""

    def __init__(self, card: SoftCard, path: Path, killer: Killer) -> None:
        self.card, self.path, self.killer = card, path, killer
        card.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        self.killer.tick()
        before = self.card.state_version
        response = self.card.process(apdu)
        if self.card.state_version != before:
            self.card.save(self.path)
        self.killer.tick()
        return response

    def close(self) -> None:
        self.card.power_off()


class KillingSam:
    def __init__(self, sam: SoftwareSam, killer: Killer) -> None:
        self.sam, self.killer = sam, killer

    def transmit(self, apdu: bytes) -> bytes:
        self.killer.tick()
        response = self.sam.transmit(apdu)
        self.killer.tick()
        return response

    def close(self) -> None:
        self.sam.close()


def main(argv: list[str]) -> int:
    directory = Path(argv[0])
    mode = argv[1]
    die_after = (
        int(argv[argv.index("--die-after-apdus") + 1]) if "--die-after-apdus" in argv else None
    )
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 0
    killer = Killer(die_after)
    sam = SoftwareSam(load_sam_keys(directory / "sam-keys.json"), directory / "sam-serial")
    journal = Journal(directory / "journal.db", TERMINAL_ID)
    journal.reconcile(sam.last_serial)  # startup: a serial the SAM gave out must have its record
    clock_state = directory / "clock"
    start = (
        datetime.fromisoformat(clock_state.read_text())
        if clock_state.exists()
        else datetime(2026, 11, 30, tzinfo=UTC)
    )
    moments = iter(start + timedelta(minutes=7 * i) for i in range(1, 1_000_000))
    current = {"now": start}

    def clock() -> datetime:
        return current["now"]

    validator = Validator(
        journal,
        Psam(KillingSam(sam, killer)),
        load_sample_feed(),
        ListStore(None, "00" * 32),
        "1",
        "old_town",
        clock=clock,
    )
    card_paths = sorted((directory / "cards").glob("*.json"))
    rng = random.Random(seed)
    if mode == "settle":
        # Every card is presented once more, long after: torn taps get settled.
        current["now"] = start + timedelta(days=1)
        for path in card_paths:
            transport = SavingTransport(SoftCard.load(path), path, Killer(None))
            for grey in journal.unresolved_grey(transport.card.card_no):
                purse = Purse(transport)
                purse.select()
                validator.recover(purse, grey)
        return 0
    for _ in range(10_000):
        path = rng.choice(card_paths)
        transport = SavingTransport(SoftCard.load(path), path, killer)
        current["now"] = next(moments)
        tmp = clock_state.with_name("clock.tmp")
        tmp.write_text(current["now"].isoformat())
        os.replace(tmp, clock_state)
        result = validator.tap(transport)
        if result.paid and result.record is not None:
            print(
                json.dumps({"seq": result.record.terminal_seq, "card": result.card_no}), flush=True
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
