"""Sectional (two-tap) fare pricing benchmark: what a validator computes at boarding (the line's
maximum fare from this stop, over every alighting zone) and at the tap-off, on zone tariffs of
growing size (N zones, N x N fare_leg_rules rows), against a ceiling measured in the same run:
pricing one flat-fare tap-on leg of the same feed.

    python bench/sectional.py [--zones 10,30,60] [--taps 50]

Pure pricing (no card, no journal): the tap budget is ~300 ms end to end (PURSE.md 5.4).
Prints one line per size and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from terminals.fares.engine import EMPTY_STATE, Leg, price_tap
from terminals.fares.feed import FareFeed, parse_feed
from terminals.fares.feed_files import read_feed_files
from terminals.fares.sectional import plan_tap

SECTIONAL = Path(__file__).resolve().parents[1] / "tests" / "terminals" / "feeds" / "sectional"
START = datetime(2026, 11, 30, 1, tzinfo=UTC)


def zone_feed(zones: int) -> FareFeed:
    files = read_feed_files(SECTIONAL)
    files["areas.txt"] = "area_id\n" + "".join(f"z{i}\n" for i in range(zones))
    files["stops.txt"] = "stop_id\n" + "".join(f"s{i}\n" for i in range(zones))
    files["stop_areas.txt"] = "area_id,stop_id\n" + "".join(f"z{i},s{i}\n" for i in range(zones))
    files["fare_products.txt"] = "fare_product_id,amount,currency\nflat,2.00,CNY\n" + "".join(
        f"p{k},{k}.00,CNY\n" for k in range(1, zones + 1)
    )
    rules = ["leg_group_id,network_id,from_area_id,to_area_id,fare_product_id,rule_priority"]
    rules += [
        f"express,express,z{i},z{j},p{abs(i - j) + 1},0" for i in range(zones) for j in range(zones)
    ]
    rules.append("urban,urban,,,flat,0")
    files["fare_leg_rules.txt"] = "\n".join(rules) + "\n"
    return parse_feed(files)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure(zones: int, taps: int) -> dict[str, float]:
    feed = zone_feed(zones)
    board, alight, flat = [], [], []
    for n in range(taps):
        at = START + timedelta(minutes=n)
        stop = f"s{n % zones}"
        t0 = time.perf_counter()
        steps = plan_tap(feed, "adult", EMPTY_STATE, "900", stop, at)
        t1 = time.perf_counter()
        off = f"s{(n * 7) % zones}"
        plan_tap(feed, "adult", steps[-1].quote.state, "900", off, at + timedelta(minutes=20))
        t2 = time.perf_counter()
        price_tap(feed, "adult", EMPTY_STATE, Leg("1", stop, at))
        t3 = time.perf_counter()
        board.append(t1 - t0)
        alight.append(t2 - t1)
        flat.append(t3 - t2)
    return {
        "zones": zones,
        "rules": zones * zones,
        "board_ms": median_ms(board),
        "alight_ms": median_ms(alight),
        "flat_tap_ms": median_ms(flat),
        "board_ratio_to_flat": statistics.median(board) / statistics.median(flat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", default="10,30,60")
    parser.add_argument("--taps", type=int, default=50)
    args = parser.parse_args()
    results = [measure(int(z), args.taps) for z in args.zones.split(",")]
    for r in results:
        print(
            f"{r['zones']:>4} zones {r['rules']:>6} rules: boarding {r['board_ms']:.2f} ms, "
            f"tap-off {r['alight_ms']:.2f} ms, flat tap-on (ceiling) {r['flat_tap_ms']:.2f} ms, "
            f"boarding/flat {r['board_ratio_to_flat']:.1f}x"
        )
    print(json.dumps({"sectional": results}))


if __name__ == "__main__":
    main()
