"""A validator process on line 900 of the sectional feed: one tap through pcscd, then (with
--hold) it waits for the next card until it is killed.

    python -m tests.terminals.sectional_worker DIR READER STOP ISO_TIME VEHICLE [--hold]

Prints the tap's outcome as one JSON line, then "holding" when --hold is given.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path

from cardio.pcsc import PcscTransport
from terminals.fares.feed import load_feed
from terminals.journal import Journal
from terminals.lists import ListStore
from terminals.sam import Psam, SoftwareSam, load_sam_keys
from terminals.terminal import Validator

SECTIONAL = Path(__file__).parent / "feeds" / "sectional"
TERMINAL_ID = "000001000050"


def main(argv: list[str]) -> int:
    directory, reader, stop, when, vehicle = Path(argv[0]), argv[1], argv[2], argv[3], argv[4]
    sam = SoftwareSam(load_sam_keys(directory / "sam-keys.json"), directory / "sam-serial")
    journal = Journal(directory / "journal.db", TERMINAL_ID)
    journal.reconcile(sam.last_serial)
    moment = datetime.fromisoformat(when)
    validator = Validator(
        journal,
        Psam(sam),
        load_feed(SECTIONAL),
        ListStore(None, "00" * 32),
        "900",
        stop,
        vehicle_id=vehicle,
        clock=lambda: moment,
    )
    transport = PcscTransport.open(reader)
    try:
        result = validator.tap(transport)
    finally:
        transport.close()
    print(
        json.dumps(
            {
                "outcome": result.outcome.value,
                "message": result.message,
                "charged": [r.amount_fen for r in result.charged],
            }
        ),
        flush=True,
    )
    if "--hold" in argv:
        print("holding", flush=True)
        while True:  # a validator waiting for the next card, until the power goes
            time.sleep(1)
    journal.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
