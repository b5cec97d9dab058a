"""Terminal benchmark: a bus validator's tap through pyscard -> pcscd -> vpcd -> software card, and
the offline journal's durable write rate.

    python bench/terminal.py [--taps 300] [--reader "Virtual PCD 00 01"] [--vpcd 127.0.0.1:35964]
                             [--journal-records 2000] [--no-pcsc]

Tap latency = from SCardConnect on the presented card to "OK": SELECT (0015 in the FCI), READ RECORD
001A (transit state), fare pricing on the sample feed, INITIALIZE FOR CAPP PURCHASE, journal intent
(fsync), SAM 80 70 (serial fsync'd), journal grey record (fsync), UPDATE CAPP DATA CACHE, DEBIT,
SAM 80 72, journal completion (fsync), disconnect. "tap_with_load": the same tap on a
load-capable validator with a pending top-up on the action list for the card, written in the
same tap (INITIALIZE FOR LOAD, load host MAC2, CREDIT FOR LOAD, journaled) before the fare. The card runs in its own process, as a real
card is another device. Journal throughput = complete records per second (intent + grey +
completion, each a durable SQLite WAL commit with synchronous=FULL). Ends with one JSON line.
Uses "Virtual PCD 00 01" so it does not collide with the card layer's tests on 00 00.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cardio.inproc import InProcessTransport
from cardio.keystore import create_key_store
from cardio.records import CardType
from cardio.softcard import SoftCard
from terminals.fares.feed import load_sample_feed
from terminals.journal import Journal, RecordKind, RecordStatus, TapRecord
from terminals.kiosk import LoadKiosk
from terminals.lists import ListStore
from terminals.sam import LoadHost, Psam, SoftwareSam, provision_sam_keys
from terminals.signing import canonical_list_bytes
from terminals.terminal import TapOutcome, Validator

TERMINAL_ID = "000001000050"
CARD_NO = "3100000000000042"
WAIT_S = 10.0
LOAD_FEN = 5000  # a 50.00 top-up written in each tap of the pending-load measurement


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _serve_card(
    card_json: str, host: str, port: int, ready: multiprocessing.synchronize.Event
) -> None:
    from cardio.vpcd import VpcdBridge

    card = SoftCard.from_json(card_json)
    bridge = VpcdBridge(card, host, port)
    bridge.connect()
    ready.set()
    bridge.serve()


class ActionLists:
    """Signs action-list deltas as the clearing service does: one new pending load per tap."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.version = 0

    @property
    def public_hex(self) -> str:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    def next_load(self, lists: ListStore, card_no: str, amount_fen: int) -> None:
        self.version += 1
        expires = datetime(2027, 12, 31, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        load = {
            "load_id": f"stripe-bench-{self.version}",
            "card_no": card_no,
            "amount_fen": amount_fen,
            "expires_at": expires,
        }
        body = {
            "list": "action",
            "since": self.version - 1,
            "version": self.version,
            "added": [load],
            "removed": [f"stripe-bench-{self.version - 1}"] if self.version > 1 else [],
            "full": self.version == 1,
            "signed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if body["full"]:
            body["since"] = 0
        body["signature"] = self.key.sign(canonical_list_bytes(body)).hex()
        lists.apply(body)


def make_validator(
    directory: Path, issuer, actions: ActionLists | None = None
) -> tuple[Validator, Journal]:
    """A bus validator; with `actions`, load-capable (pending top-ups written in the same tap)."""
    keys = provision_sam_keys(
        issuer, bytes.fromhex(TERMINAL_ID), directory / "sam-keys.json", with_load=True
    )
    sam = SoftwareSam(keys, directory / "sam-serial")
    journal = Journal(directory / "journal.db", TERMINAL_ID)
    clock = {"now": datetime(2026, 11, 30, tzinfo=UTC)}

    def tick() -> datetime:
        clock["now"] += timedelta(minutes=37)  # a mix of fresh fares, transfers and capped rides
        return clock["now"]

    lists = ListStore(None, actions.public_hex if actions else "00" * 32)
    validator = Validator(
        journal, Psam(sam), load_sample_feed(), lists, "1", "old_town", clock=tick
    )
    if actions is not None:
        validator.loader = LoadKiosk(
            journal, LoadHost(keys), sam.serials, lists, clock=lambda: clock["now"]
        )
    return validator, journal


def bench_pcsc(
    taps: int, reader: str, vpcd: str, directory: Path, issuer, *, with_loads: bool = False
) -> dict[str, float]:
    """Taps through pcscd; `with_loads`: each tap also writes a pending top-up (the action list
    gets one new load before each tap, untimed: a terminal fetches lists between taps)."""
    from cardio.pcsc import PcscTransport, list_readers, wait_for_card, wait_for_removal

    if reader not in list_readers():
        raise SystemExit(
            f"no reader {reader!r}: start pcscd with vpcd (bash scripts/pcsc.sh start)"
        )
    host, port = vpcd.rsplit(":", 1)
    card = SoftCard.issue(
        issuer, CARD_NO, CardType.ADULT, balance_fen=50_000_000, balance_limit_fen=100_000_000
    )
    ready = multiprocessing.get_context("spawn").Event()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve_card, args=(card.to_json(), host, int(port), ready), daemon=True
    )
    process.start()
    try:
        if not ready.wait(WAIT_S):
            raise SystemExit("the card process did not connect to vpcd")
        wait_for_card(reader, WAIT_S)
        actions = ActionLists() if with_loads else None
        validator, journal = make_validator(directory, issuer, actions)
        latencies: list[float] = []
        for _ in range(5):  # warm-up: imports, SQLite pages, pcscd handles
            transport = PcscTransport.open(reader)
            validator.tap(transport)
            transport.close()
        for _ in range(taps):
            if actions is not None:
                actions.next_load(validator.lists, CARD_NO, LOAD_FEN)
            started = time.perf_counter()
            transport = PcscTransport.open(reader)
            result = validator.tap(transport)
            transport.close()
            latencies.append((time.perf_counter() - started) * 1000)
            if result.outcome is not TapOutcome.OK:
                raise SystemExit(f"tap failed: {result.outcome} {result.message}")
            if actions is not None and "loaded" not in result.message:
                raise SystemExit(f"the pending load was not written: {result.message}")
        holes = journal.sequence_holes()
        journal.close()
        if holes:
            raise SystemExit(f"journal has sequence holes {holes}")
    finally:
        process.terminate()
        process.join(WAIT_S)
        wait_for_removal(reader, WAIT_S)  # the next measurement's card is a fresh one
    prefix = "tap_with_load" if with_loads else "tap"
    return {
        f"{prefix}_p50_ms": percentile(latencies, 0.50),
        f"{prefix}_p99_ms": percentile(latencies, 0.99),
        f"{prefix}_max_ms": max(latencies),
        f"{prefix}_mean_ms": statistics.fmean(latencies),
    }


def bench_inprocess(taps: int, directory: Path, issuer) -> dict[str, float]:
    card = SoftCard.issue(
        issuer, CARD_NO, CardType.ADULT, balance_fen=50_000_000, balance_limit_fen=100_000_000
    )
    transport = InProcessTransport(card)
    validator, journal = make_validator(directory, issuer)
    latencies = []
    for _ in range(taps):
        started = time.perf_counter()
        result = validator.tap(transport)
        latencies.append((time.perf_counter() - started) * 1000)
        if result.outcome is not TapOutcome.OK:
            raise SystemExit(f"tap failed: {result.outcome} {result.message}")
    journal.close()
    return {
        "inproc_tap_p50_ms": percentile(latencies, 0.5),
        "inproc_tap_p99_ms": percentile(latencies, 0.99),
    }


def bench_journal(records: int, directory: Path) -> dict[str, float]:
    journal = Journal(directory / "throughput.db", TERMINAL_ID)
    draft = TapRecord(
        RecordKind.PURCHASE,
        RecordStatus.GREY,
        0,
        CARD_NO,
        0,
        9,
        200,
        10_000,
        9_800,
        datetime(2026, 11, 30, tzinfo=UTC),
        None,
        "adult",
        "adult",
        200,
        "urban:urban_flat",
        "1",
        "old_town",
    )
    started = time.perf_counter()
    for seq in range(1, records + 1):
        intent = journal.append_intent(draft)
        journal.append_grey(intent, replace(draft, terminal_seq=seq, card_counter=seq % 65536))
        journal.complete(seq, b"\x01\x02\x03\x04", 9_800)
    elapsed = time.perf_counter() - started
    batch_started = time.perf_counter()
    batched = 0
    while (batch := journal.next_batch(records_max=1000)) is not None:
        journal.acknowledge(batch, duplicate=False)
        batched += batch.records
    batch_elapsed = time.perf_counter() - batch_started
    journal.close()
    return {
        "journal_records_per_s": records / elapsed,
        "journal_commit_ms": elapsed / records / 3 * 1000,
        "journal_batch_records_per_s": batched / batch_elapsed if batch_elapsed else 0.0,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=300)
    parser.add_argument("--reader", default="Virtual PCD 00 01")
    parser.add_argument("--vpcd", default="127.0.0.1:35964")
    parser.add_argument("--journal-records", type=int, default=2000)
    parser.add_argument("--no-pcsc", action="store_true", help="skip the pcscd measurement")
    args = parser.parse_args(argv)
    results: dict[str, float | int] = {"taps": args.taps, "journal_records": args.journal_records}
    with tempfile.TemporaryDirectory(prefix="onecard-bench-", dir=Path.cwd()) as temp:
        directory = Path(temp)
        issuer = create_key_store(directory / "issuer.json")
        if not args.no_pcsc:
            (directory / "pcsc").mkdir()
            results.update(
                bench_pcsc(args.taps, args.reader, args.vpcd, directory / "pcsc", issuer)
            )
            (directory / "pcsc-load").mkdir()
            results.update(
                bench_pcsc(
                    args.taps,
                    args.reader,
                    args.vpcd,
                    directory / "pcsc-load",
                    issuer,
                    with_loads=True,
                )
            )
        (directory / "inproc").mkdir()
        results.update(bench_inprocess(args.taps, directory / "inproc", issuer))
        results.update(bench_journal(args.journal_records, directory))
    print(f"{'measure':<34} {'value':>12}")
    for key, value in results.items():
        print(f"{key:<34} {value:>12.2f}" if isinstance(value, float) else f"{key:<34} {value:>12}")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
