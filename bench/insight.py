"""Benchmark of insight on PostgreSQL: `python bench/insight.py --taps-per-day 1000000`.

Fills a fresh database with `--days` (30) days of cleared bus taps (`--taps-per-day` a day, made
by SQL generate_series: riders commuting between two stops of their line on a network of
`--stops` stops and `--lines` lines, written into a feed folder next to the sample fares), then
times one release over the whole period: staging with the trip-chaining window functions, every
GROUP BY, the chaining lookup, the noise and the budget ledger row (then the same steps again,
rolled back, for the split: stage_s, aggregates_s, od_s). In the same run it times
PostgreSQL's own scan of the same rows (the join of cleared_taps and tap_records over the period,
counted) as the ceiling, and reports the Python process's peak memory (the month never enters
Python). Ends with one JSON line.

`--url` names the database; by default a fresh `onecard_bench_insight` database is made on the
local PostgreSQL (dropped and re-created).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from clearing import db
from insight import repository, service
from insight.network import load_network
from insight.settings import InsightSettings
from insight.synthetic import TERMINAL_ID, prepare_source
from terminals.fares import sample_feed_dir

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/onecard_bench_insight"
START = date(2026, 9, 1)
DAYS_MAX = 92


def fresh_database(url: str) -> None:
    parsed = make_url(url)

    async def recreate() -> None:
        admin = create_async_engine(
            parsed.set(database="postgres").render_as_string(hide_password=False),
            isolation_level="AUTOCOMMIT",
        )
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
        await admin.dispose()

    asyncio.run(recreate())
    db.upgrade(url)


def write_feed(folder: Path, stops: int, lines: int) -> Path:
    """The sample fares with a bigger network: stops on a grid ~400 m apart, line L serving
    the stops s with s % lines == L (extra stops and lines; the sample's own are kept)."""
    shutil.copytree(sample_feed_dir(), folder, dirs_exist_ok=True)
    side = int(stops**0.5) + 1
    with (folder / "stops.txt").open("a", encoding="utf-8") as out:
        for s in range(stops):
            lat, lon = 29.55 + 0.0036 * (s // side), 91.00 + 0.0041 * (s % side)
            out.write(f"b{s},Bench stop {s},{lat:.5f},{lon:.5f}\n")
    with (folder / "routes.txt").open("a", encoding="utf-8") as out:
        for line in range(lines):
            out.write(f"b{line},plateau_bus,B{line},Bench line {line},3\n")
    return folder


# Rider r rides line r % lines from a home stop to a work stop of that line and back; weekdays
# 90 % of riders travel, weekends 40 % (a hash of rider and day decides). Local times: morning
# 06:30-09:30, evening 16:30-19:30 (Asia/Shanghai, UTC+8).
_GENERATE = """
INSERT INTO tap_records (batch_pk, record_index, terminal_id, kind, status, terminal_seq, card_no,
  card_counter, txn_type, amount_fen, balance_before_fen, balance_after_fen, occurred_at, tac,
  card_type, rider_category, full_fare_fen, fare_rule, route_id, stop_id, insured_fen,
  offline_fallback, deny_list_version, action_list_version, state, received_at, state_changed_at)
SELECT $1, (d * $3 + r) * 2 + leg, $2, 'purchase', 'complete', (d * $3 + r) * 2 + leg,
  lpad((3100000000000000 + r)::text, 16, '0'), d * 2 + leg + 1, 6, 200, 100000, 99800,
  ($4::date + d) + interval '6.5 hours' - interval '8 hours'
    + (leg * interval '10 hours') + ((r::bigint * 7919) % 180) * interval '1 minute',
  NULL, (ARRAY['adult','adult','adult','adult','adult','adult','adult','student','senior',
  'disabled'])[r % 10 + 1], 'adult', 200, 'flat', 'b' || (r % $5),
  'b' || ((r % $5) + $5 * (CASE WHEN leg = 0 THEN (r / $5) % $6
                                ELSE ((r / $5) + 1 + (r / ($5 * $6)) % ($6 - 1)) % $6 END)),
  0, false, 0, 0, 'cleared', now(), now()
FROM generate_series(0, $7 - 1) AS d, generate_series(0, $3 - 1) AS r, (VALUES (0), (1)) AS l(leg)
WHERE abs(hashtext(r::text || ':' || d::text)) % 100
      < CASE WHEN extract(isodow FROM $4::date + d) >= 6 THEN 40 ELSE 90 END
"""

_CLEAR = """
INSERT INTO cleared_taps (card_no, purse, card_counter, tap_record_id, terminal_id, terminal_seq,
  participant_code, kind, txn_type, card_type, route_id, amount_fen, balance_before_fen,
  balance_after_fen, full_fare_fen, subsidy_fen, insured_fen, occurred_at, business_day,
  settlement_day, outcome, run_id, cleared_at)
SELECT card_no, 'offline', card_counter, id, terminal_id, terminal_seq, 'synthetic_bus', kind,
  txn_type, card_type, route_id, amount_fen, balance_before_fen, balance_after_fen,
  full_fare_fen, 0, 0, occurred_at, (occurred_at AT TIME ZONE 'Asia/Shanghai')::date,
  (occurred_at AT TIME ZONE 'Asia/Shanghai')::date, 'posted', 0, now()
FROM tap_records WHERE batch_pk = $1
"""

_CEILING = """
SELECT count(*), count(DISTINCT tr.stop_id) FROM cleared_taps ct
JOIN tap_records tr ON tr.id = ct.tap_record_id
WHERE ct.kind = 'purchase' AND ct.route_id IS NOT NULL AND tr.stop_id IS NOT NULL
  AND ct.business_day BETWEEN $1 AND $2
"""


async def fill(url: str, riders: int, days: int, stops: int, lines: int) -> int:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with connection.transaction():
            batch = await prepare_source(connection)
            stops_per_line = max(2, stops // lines)
            await connection.execute(
                _GENERATE, batch, TERMINAL_ID, riders, START, lines, stops_per_line, days
            )
            status = await connection.execute(_CLEAR, batch)
        await connection.execute("VACUUM ANALYZE tap_records")
        await connection.execute("VACUUM ANALYZE cleared_taps")
        return int(status.split()[-1])
    finally:
        await connection.close()


async def measure(url: str, feed: Path, days: int) -> dict[str, float | int]:
    end = START + timedelta(days=days - 1)
    settings = InsightSettings(feed_dir=str(feed), epsilon_per_day_max=40)
    network = load_network(feed)
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    began = time.perf_counter()
    scanned, _ = await connection.fetchrow(_CEILING, START, end)
    ceiling_s = time.perf_counter() - began
    await connection.close()
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        began = time.perf_counter()
        made = await service.build_release(conn, settings, network, START, end, created_by="bench")
        await conn.commit()
        build_s = time.perf_counter() - began
        # The same work again, step by step, for the split (rolled back: no budget spent).
        began = time.perf_counter()
        await service.stage_period(conn, settings, network, START, end)
        stage_s = time.perf_counter() - began
        split: dict[str, float] = {}
        for name in service.TABLES:
            began = time.perf_counter()
            await repository.table_counts(conn, name)
            split[name] = time.perf_counter() - began
        await conn.rollback()
    await engine.dispose()
    return {
        "stage_s": round(stage_s, 2),
        "aggregates_s": round(sum(t for n, t in split.items() if not n.startswith("od")), 2),
        "od_s": round(split["od"] + split["od_outcome"], 2),
        "rows_scanned": scanned,
        "ceiling_scan_s": round(ceiling_s, 2),
        "build_s": round(build_s, 2),
        "od_cells": len(made.tables["od"].rows),
        "od_cells_suppressed": made.tables["od"].cells_suppressed,
        "stop_hour_cells": len(made.tables["stop_hour"].rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps-per-day", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--stops", type=int, default=600)
    parser.add_argument("--lines", type=int, default=60)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--keep", action="store_true", help="reuse the database (no refill)")
    args = parser.parse_args()
    if not 1 <= args.days <= DAYS_MAX or args.taps_per_day < 100 or args.lines < 1:
        parser.error(f"--days 1..{DAYS_MAX}, --taps-per-day >= 100, --lines >= 1")
    riders = max(1, int(args.taps_per_day / (2 * (5 * 0.9 + 2 * 0.4) / 7)))
    folder = Path(tempfile.mkdtemp(prefix="insight-bench-"))
    feed = write_feed(folder, args.stops, args.lines)
    taps = None
    fill_s = 0.0
    if not args.keep:
        fresh_database(args.url)
        began = time.perf_counter()
        taps = asyncio.run(fill(args.url, riders, args.days, args.stops, args.lines))
        fill_s = time.perf_counter() - began
    figures = asyncio.run(measure(args.url, feed, args.days))
    shutil.rmtree(folder, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "bench": "insight",
        "days": args.days,
        "taps_per_day_asked": args.taps_per_day,
        "taps": taps if taps is not None else figures["rows_scanned"],
        "riders": riders,
        "stops": args.stops,
        "lines": args.lines,
        "fill_s": round(fill_s, 1),
        **figures,
        "build_vs_ceiling": round(figures["build_s"] / max(figures["ceiling_scan_s"], 1e-9), 1),
        "taps_per_s": round(figures["rows_scanned"] / max(figures["build_s"], 1e-9)),
        "peak_rss_mb": round(peak_mb, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
