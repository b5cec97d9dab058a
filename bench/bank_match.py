"""Benchmark of matcher 5 (bank lines against payouts), pure: `python bench/bank_match.py`.

A year of settlement: `--participants` (200) operators paid every day for `--days` (400) days,
and a statement paying them, each day's file booked one way: by end-to-end id, as one batch
line under the pain.001's reference, or line by line with no reference at all (amount and date,
shifted within the two-bank-day tolerance). Times one `match_bank` call over all of it and, as the ceiling in the
same run, Python sorting and indexing the same payouts and lines once (the least any matcher
does). A statement that pays everything: the run must find no break. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciliation.bank.bankdays import add_bank_days
from reconciliation.bank.matching import ExpectedPayout, LineItem, PayoutSource, match_bank

FIRST = date(2025, 11, 1)
TOLERANCE = 2


def generate(
    participants: int, days: int, seed: int
) -> tuple[list[ExpectedPayout], list[LineItem]]:
    rng = random.Random(seed)
    payouts: list[ExpectedPayout] = []
    lines: list[LineItem] = []
    for d in range(days):
        day = FIRST + timedelta(days=d)
        ref = f"ONECARD-SETTLE-{day:%Y%m%d}-1"
        mode = d % 3  # how the bank booked the day's file
        day_payouts = []
        for n in range(participants):
            fen = rng.randint(1_000, 50_000_000)
            p = ExpectedPayout(
                f"settlement:{day}:op-{n}", PayoutSource.SETTLEMENT, f"op-{n}", -fen,
                day, f"OC{day:%Y%m%d}-op-{n}", frozenset({ref}),
            )  # fmt: skip
            day_payouts.append(p)
            if mode == 0:
                lines.append(LineItem(f"E{d}-{n}", -fen, day, p.end_to_end_id))
            elif mode == 2:
                shifted = add_bank_days(day, rng.randint(-TOLERANCE, TOLERANCE))
                lines.append(LineItem(f"N{d}-{n}", -fen, shifted, None))
        payouts.extend(day_payouts)
        if mode == 1:
            total = sum(p.signed_fen for p in day_payouts)
            lines.append(LineItem(f"B{d}", total, day, None, frozenset({ref})))
    return payouts, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    payouts, lines = generate(args.participants, args.days, args.seed)
    as_of = FIRST + timedelta(days=args.days + 10)

    started = time.perf_counter()
    by_key = {p.key: p for p in sorted(payouts, key=lambda p: (p.expected_date, p.key))}
    by_ref = {ln.ref: ln for ln in sorted(lines, key=lambda ln: (ln.value_date, ln.ref))}
    ceiling_s = time.perf_counter() - started
    if len(by_key) != len(payouts) or len(by_ref) != len(lines):
        raise SystemExit("keys and references must be unique")

    started = time.perf_counter()
    result = match_bank(payouts, lines, as_of=as_of, tolerance_days=TOLERANCE)
    seconds = time.perf_counter() - started
    if result.findings:
        raise SystemExit(f"a statement paying everything left {len(result.findings)} breaks")
    items = len(payouts) + len(lines)
    print(f"payouts {len(payouts):,}, statement lines {len(lines):,}")
    print(
        f"match_bank: {seconds:.2f} s, {items / seconds:,.0f} items/s, auto-match "
        f"{result.auto_match_rate:.2%}"
    )
    print(
        f"ceiling (sort + index the same items once): {ceiling_s:.3f} s; "
        f"ratio {seconds / ceiling_s:.1f}x"
    )
    print(json.dumps({
        "payouts": len(payouts), "lines": len(lines), "seconds": round(seconds, 3),
        "items_per_s": round(items / seconds), "ceiling_s": round(ceiling_s, 4),
        "ratio": round(seconds / ceiling_s, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
