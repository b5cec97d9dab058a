"""Tap benchmark: a full CAPP purchase tap through pyscard -> pcscd -> vpcd -> software card,
the same tap in-process, and the cryptography alone.

    python bench/tap.py [--taps 1000] [--reader "Virtual PCD 00 00"] [--vpcd 127.0.0.1:35963] [--no-pcsc]

A tap = SELECT, READ BINARY 0015, INITIALIZE FOR CAPP PURCHASE, UPDATE CAPP DATA CACHE, DEBIT FOR
CAPP PURCHASE, and the terminal's crypto (diversify DPK, session key, MAC1, verify MAC2) as a software
SAM would do it. The card runs in its own process (as a real card is another device). Needs pcscd
with vpcd running (bash scripts/pcsc.sh start). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from cardio import crypto
from cardio.crypto import TxnType
from cardio.inproc import InProcessTransport
from cardio.keystore import KeyKind, KeyStore, create_key_store
from cardio.purse import Purse
from cardio.records import CardType, JourneyState, TransitRecord
from cardio.softcard import SoftCard

TERMINAL = bytes.fromhex("000001000050")
START = datetime(2026, 11, 29, 7, 0, 0)
WARMUP_TAPS = 20
FARE_FEN = 1


def _serve_card(
    card_json: str,
    host: str,
    port: int,
    ready: multiprocessing.synchronize.Event,
    save_to: str | None,
) -> None:
    from cardio.vpcd import VpcdBridge

    card = SoftCard.from_json(card_json)
    persist = (lambda: card.save(save_to)) if save_to else None
    bridge = VpcdBridge(card, host, port, on_change=persist)
    bridge.connect()
    ready.set()
    bridge.serve()


def _tap(purse: Purse, store: KeyStore, serial: int, when: datetime) -> None:
    purse.select()
    info = purse.read_public_info()
    master = store.master(KeyKind.PURCHASE)
    init = purse.initialize_purchase(master.index, FARE_FEN, TERMINAL, capp=True)
    dpk = crypto.diversify_key(master.key, info.app_serial, init.algorithm)
    sespk = crypto.purchase_session_key(
        dpk, init.card_random, init.offline_counter, serial, init.algorithm
    )
    mac1 = crypto.purchase_mac1(
        sespk, FARE_FEN, TxnType.CAPP_PURCHASE, TERMINAL, when, algorithm=init.algorithm
    )
    record = TransitRecord(
        JourneyState.BOARDED, line=42, stop=serial % 60, terminal_id=TERMINAL, tapped_at=when
    )
    purse.update_capp_data_cache(record.encode())
    debit = purse.debit(serial, when, mac1)
    if crypto.purchase_mac2(sespk, FARE_FEN, init.algorithm) != debit.mac2:
        raise SystemExit("MAC2 did not verify: the benchmark is measuring a broken tap")


def _measure(taps: int, tap: Callable[[int, datetime], None]) -> list[float]:
    for n in range(WARMUP_TAPS):
        tap(n + 1, START)
    out = []
    for n in range(taps):
        when = START + timedelta(seconds=n)
        t0 = time.perf_counter()
        tap(WARMUP_TAPS + n + 1, when)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _crypto_us_per_tap(store: KeyStore, app_serial: bytes, rounds: int) -> float:
    """Both sides of one tap: the SAM (diversify, session key, MAC1, MAC2 check) and the card
    (session key, MAC1 check, TAC, MAC2)."""
    master = store.master(KeyKind.PURCHASE).key
    card_dpk = crypto.diversify_key(master, app_serial)
    dtk = crypto.diversify_key(store.master(KeyKind.TAC).key, app_serial)
    random4 = b"\x01\x02\x03\x04"
    when = START
    t0 = time.perf_counter()
    for n in range(rounds):
        dpk = crypto.diversify_key(master, app_serial)
        sespk = crypto.purchase_session_key(dpk, random4, n & 0xFFFF, n)
        mac1 = crypto.purchase_mac1(sespk, FARE_FEN, 9, TERMINAL, when)
        card_sespk = crypto.purchase_session_key(card_dpk, random4, n & 0xFFFF, n)
        if crypto.purchase_mac1(card_sespk, FARE_FEN, 9, TERMINAL, when) != mac1:
            raise SystemExit("MAC1 mismatch")
        crypto.purchase_tac(dtk, FARE_FEN, 9, TERMINAL, n, when)
        mac2 = crypto.purchase_mac2(card_sespk, FARE_FEN)
        if crypto.purchase_mac2(sespk, FARE_FEN) != mac2:
            raise SystemExit("MAC2 mismatch")
    return (time.perf_counter() - t0) / rounds * 1e6


def _tac_verify_us(store: KeyStore, rounds: int, cards: int = 1000) -> float:
    """Back-office TAC verification (the clearing hot path) of taps of `cards` cards in turn:
    with 1,000 cards every card's key is cached after its first tap; with as many cards as taps
    every tap is a card not seen before (a city's day: more cards than the cache holds)."""
    master = store.master(KeyKind.TAC).key
    items = []
    for n in range(rounds):
        serial = (0x3100000000000000 + n % cards).to_bytes(8, "big")
        dtk = crypto.diversify_key(master, serial)
        tac = crypto.purchase_tac(dtk, 200, 9, TERMINAL, n, START)
        items.append(crypto.PurchaseTacInput(serial, 200, 9, TERMINAL, n, START, tac))
    verifier = crypto.TacVerifier(master)
    t0 = time.perf_counter()
    results = verifier.verify_purchases(items)
    elapsed = time.perf_counter() - t0
    if not all(results):
        raise SystemExit("a TAC did not verify")
    return elapsed / rounds * 1e6


def _tac_per_call_us(store: KeyStore, rounds: int) -> float:
    """The reference: `verify_purchase_tac` per tap, each of a card not seen before (the
    card's key diversified with contexts made for it, as the specification's steps read)."""
    master = store.master(KeyKind.TAC).key
    items = []
    for n in range(rounds):
        serial = (0x3200000000000000 + n).to_bytes(8, "big")
        dtk = crypto.diversify_key(master, serial)
        items.append((serial, n, crypto.purchase_tac(dtk, 200, 9, TERMINAL, n, START)))
    t0 = time.perf_counter()
    ok = [
        crypto.verify_purchase_tac(master, serial, 200, 9, TERMINAL, n, START, tac)
        for serial, n, tac in items
    ]
    elapsed = time.perf_counter() - t0
    if not all(ok):
        raise SystemExit("a TAC did not verify")
    return elapsed / rounds * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--taps", type=int, default=1000)
    parser.add_argument("--reader", default="Virtual PCD 00 00")
    parser.add_argument("--vpcd", default="127.0.0.1:35963", help="the reader's vpcd HOST:PORT")
    parser.add_argument("--no-pcsc", action="store_true", help="skip the pcscd run")
    parser.add_argument(
        "--persist",
        action="store_true",
        help="the card saves CARD.json (fsync) after every debit, as `onecard card attach` does",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.taps <= 100_000:
        parser.error("--taps must be 1..100000")

    with tempfile.TemporaryDirectory() as tmp:
        store = create_key_store(Path(tmp) / "keys.json")

        def fresh_card() -> SoftCard:
            return SoftCard.issue(store, "3100000000000001", CardType.ADULT, balance_fen=100_000)

        results: dict[str, float | None] = {}
        rows = []

        card = fresh_card()
        inproc = Purse(InProcessTransport(card))
        inproc_ms = _measure(args.taps, lambda serial, when: _tap(inproc, store, serial, when))
        if card.balance_fen != 100_000 - (args.taps + WARMUP_TAPS) * FARE_FEN:
            raise SystemExit("in-process taps did not debit exactly once each")
        rows.append(("in-process tap", inproc_ms))

        pcsc_ms: list[float] | None = None
        if not args.no_pcsc:
            from cardio.pcsc import PcscTransport, wait_for_card, wait_for_removal
            from cardio.vpcd import parse_host_port

            host, port = parse_host_port(args.vpcd)
            ready = multiprocessing.get_context("fork").Event()
            served = fresh_card()
            process = multiprocessing.get_context("fork").Process(
                target=_serve_card,
                args=(
                    served.to_json(),
                    host,
                    port,
                    ready,
                    str(Path(tmp) / "CARD.json") if args.persist else None,
                ),
                daemon=True,
            )
            process.start()
            try:
                if not ready.wait(10):
                    raise SystemExit(
                        "the card process could not reach vpcd (bash scripts/pcsc.sh start)"
                    )
                wait_for_card(args.reader, 10.0)
                with PcscTransport.open(args.reader) as transport:
                    purse = Purse(transport)
                    pcsc_ms = _measure(
                        args.taps, lambda serial, when: _tap(purse, store, serial, when)
                    )
                    balance = purse.get_balance()
                if balance != 100_000 - (args.taps + WARMUP_TAPS) * FARE_FEN:
                    raise SystemExit("pcsc taps did not debit exactly once each")
            finally:
                process.terminate()
                process.join(5)
                wait_for_removal(args.reader, 5.0)
            label = (
                "pcsc tap, card saving CARD.json"
                if args.persist
                else "pcsc tap (pyscard->pcscd->vpcd->card)"
            )
            rows.append((label, pcsc_ms))

        crypto_us = _crypto_us_per_tap(store, card.app_serial, max(1000, args.taps))
        tac_us = _tac_verify_us(store, 20_000)
        tac_new_us = _tac_verify_us(store, 20_000, cards=20_000)
        tac_per_call_us = _tac_per_call_us(store, 20_000)

    print(f"{'what':42} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'max ms':>8}")
    for name, values in rows:
        print(
            f"{name:42} {_pct(values, 0.5):8.3f} {_pct(values, 0.99):8.3f} "
            f"{statistics.fmean(values):8.3f} {max(values):8.3f}"
        )
    print(
        f"{'crypto alone, both sides of one tap':42} {crypto_us / 1000:8.3f} ms ({crypto_us:.1f} us)"
    )
    print(
        f"{'back-office TAC verify (cached card key)':42} {tac_us:8.1f} us each "
        f"({1_000_000 * tac_us / 1e6:.1f} s per million)"
    )
    print(
        f"{'back-office TAC verify (a new card each)':42} {tac_new_us:8.1f} us each "
        f"({tac_new_us / tac_us:.1f}x a cached card's; verify_purchase_tac per call "
        f"{tac_per_call_us:.1f} us: {tac_per_call_us / tac_new_us:.1f}x)"
    )
    results = {
        "taps": args.taps,
        "persist": args.persist,
        "pcsc_tap_p50_ms": round(_pct(pcsc_ms, 0.5), 3) if pcsc_ms else None,
        "pcsc_tap_p99_ms": round(_pct(pcsc_ms, 0.99), 3) if pcsc_ms else None,
        "inproc_tap_p50_ms": round(_pct(inproc_ms, 0.5), 3),
        "inproc_tap_p99_ms": round(_pct(inproc_ms, 0.99), 3),
        "crypto_us_per_tap": round(crypto_us, 1),
        "tac_verify_us": round(tac_us, 2),
        "tac_verify_new_card_us": round(tac_new_us, 2),
        "tac_verify_per_call_us": round(tac_per_call_us, 2),
    }
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
