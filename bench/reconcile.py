"""Benchmark of the nightly reconciliation on PostgreSQL: `python bench/reconcile.py`.

Fills a fresh database, by SQL generate_series inside PostgreSQL (the day never passes through
Python), with a business day of `--taps` (1,000,000) taps over `--cards` (100,000) cards and
`--terminals` (1,000) terminals: uploaded batches of 500 records, the staged tap records, the
cleared taps, and the ledger (the cards' first loads and one card -> operator transfer per tap,
accounts holding exactly what their transfers add up to). Then times one reconciliation run of
the day (every check: ledger, terminals, cards; the breaks written), reporting seconds, taps/s and
the Python process's peak memory (tracemalloc's peak, from a second, untimed run: tracing slows
Python several times over; and the peak RSS). In the same run it times
PostgreSQL's own full scan of the same rows (tap_records, cleared_taps, ledger_transfers, counted
and summed) as the ceiling. A valid day: the run must find no break. Ends with one JSON line.

`--history-days N` fills N earlier days of the same size first (oldest first, as the tables
grow; their taps on cards and terminals of their own, staged, cleared and posted to the ledger):
a night's run should cost the same after them. `--all-accounts` times the weekly sweep's night
(every ledger account checked against its last entry too). `--url` names the database, which
the benchmark drops and re-creates: its name must hold "bench" (by default `onecard_bench_recon`
on the local PostgreSQL). Each generated transfer records its two accounts' balances right after
it, as the ledger writes them (the ledger check reads them instead of summing the history). The
nights before the day were reconciled, as in a city's running year: a finished run each (at least the
night before), recording the ledger time its check read, so the day's run reads the ledger from
the day's start (reconciliation.repository.ledger_window), not the whole history as a first run
of all would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
import tracemalloc
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bench.clearing import SYSTEM_DATABASES, fresh_database
from clearing.calendar import BusinessCalendar
from clearing.errors import ClearingError
from reconciliation.checks.ledger import ledger_ns
from reconciliation.run import run_day

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/onecard_bench_recon"
DAY = date(2026, 11, 2)
OPERATORS = 10
RECORDS_PER_BATCH = 500
FIRST_LOAD_FEN = 100_000
# Terminal ids are 12 hex digits from here on (a history day's terminals: a multiple of it).
TERMINAL_BASE = 1_048_576
HISTORY_DAYS_MAX = 60

# One row per tap: card c taps its k-th time (card counter k) at day start + k * 2 h + c % 7200 s,
# on terminal (c + 37 k) % 1000; each terminal's serials run 1.. in the order of its taps.
_GENERATE = """
CREATE TEMP TABLE gen AS
WITH base AS (
  SELECT i, i % $1 AS c, i / $1 AS k,
         (100 + (i % $1 + i / $1) % 200)::bigint AS amount
  FROM generate_series(0, $2 - 1) AS i
), priced AS (
  SELECT *, ((c + 37 * k) % $3)::int AS t,
         $4::timestamptz + make_interval(secs => k * 7200 + c % 7200) AS at,
         $6 - coalesce(sum(amount) OVER (PARTITION BY c ORDER BY k
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before_fen
  FROM base
)
SELECT i, $7 || lpad(c::text, 14, '0') AS card_no, k::int AS counter,
       lpad(to_hex($8 + t), 12, '0') AS terminal_id, t % $5 AS operator, amount,
       before_fen, before_fen - amount AS after_fen, at,
       row_number() OVER (PARTITION BY t ORDER BY at, i) AS seq
FROM priced
"""

# Once per database: the operators.
_PARTICIPANTS = (
    "INSERT INTO participants (code, name, kind, commission_bp, bank_account, bank_name,"
    " status, created_at) SELECT 'bus-' || n, 'Bus ' || n, 'bus_operator', 50,"
    " '6222' || lpad(n::text, 12, '0'), 'Bank of the City', 'active', now()"
    " FROM generate_series(0, {operators} - 1) AS n",
)
# Once per day filled (the history days and the day reconciled), from that day's `gen`.
_DAY_STEPS = (
    "INSERT INTO terminals (terminal_id, participant_id, kind, line, public_key, status, seq_high,"
    " created_at) SELECT terminal_id, p.id, 'bus', 'L1', '', 'active', max(seq), now()"
    " FROM gen JOIN participants p ON p.code = 'bus-' || gen.operator"
    " GROUP BY terminal_id, p.id",
    "INSERT INTO ingest_batches (terminal_id, batch_id, body, body_sha256, record_count,"
    " amount_fen_total, received_at) SELECT terminal_id, 'b-' || ((seq - 1) / {batch}), '', '',"
    " count(*), sum(amount), max(at) FROM gen GROUP BY terminal_id, (seq - 1) / {batch}",
    "INSERT INTO tap_records (batch_pk, record_index, terminal_id, kind, status, terminal_seq,"
    " card_no, card_counter, txn_type, amount_fen, balance_before_fen, balance_after_fen,"
    " occurred_at, tac, card_type, rider_category, full_fare_fen, fare_rule, route_id, stop_id,"
    " insured_fen, visit_id, load_id, offline_fallback, deny_list_version, action_list_version,"
    " state, quarantine_reason, received_at, state_changed_at)"
    " SELECT b.id, (seq - 1) % {batch}, g.terminal_id, 'purchase', 'complete', seq, card_no,"
    " counter, 6, amount, before_fen, after_fen, at, '00000000', 'adult', 'adult', amount,"
    " 'flat', 'L1', NULL, 0, NULL, NULL, false, 0, 0, 'cleared', NULL, b.received_at, now()"
    " FROM gen g JOIN ingest_batches b ON b.terminal_id = g.terminal_id"
    " AND b.batch_id = 'b-' || ((g.seq - 1) / {batch})",
    "INSERT INTO cleared_taps (card_no, purse, card_counter, tap_record_id, terminal_id,"
    " terminal_seq, participant_code, kind, txn_type, card_type, route_id, amount_fen,"
    " balance_before_fen, balance_after_fen, full_fare_fen, subsidy_fen, insured_fen,"
    " occurred_at, business_day, settlement_day, outcome, run_id, cleared_at)"
    " SELECT card_no, 'offline', card_counter, id, terminal_id, terminal_seq, 'bus', kind,"
    " txn_type, card_type, route_id, amount_fen, balance_before_fen, balance_after_fen,"
    " full_fare_fen, 0, 0, occurred_at, '{day}', '{day}', 'posted', 1, now() FROM tap_records"
    " WHERE id > {after}",
)
# Every day filled (the history days and the day reconciled) posts to the ledger: its cards'
# first loads (escrow -> card, in the last second before the day) and one card -> operator
# transfer per tap (at the tap's time, nanoseconds apart), gathered in `moves`; then, once, the
# transfers with the balances each records for its two accounts right after it (running sums per
# account in ledger time, as the ledger writes them), and the accounts holding their sums.
_LEDGER_BEFORE = (
    "CREATE TEMP TABLE names AS SELECT 'bank:escrow' AS name, 1001 AS code UNION ALL"
    " SELECT 'payable:bus-' || n, 2101 FROM generate_series(0, {operators} - 1) AS n",
    "CREATE TEMP TABLE moves (id uuid, debit uuid, credit uuid, amount bigint, code int,"
    " ts bigint)",
)
_LEDGER_DAY = (
    "INSERT INTO names SELECT DISTINCT 'card:' || card_no, 2001 FROM gen",
    "INSERT INTO moves SELECT md5('load:' || card_no)::uuid, md5('bank:escrow')::uuid,"
    " md5('card:' || card_no)::uuid, {first_load}, 102,"
    " {day_ns} - 1000000000 + row_number() OVER (ORDER BY card_no)"
    " FROM (SELECT DISTINCT card_no FROM gen) AS c",
    "INSERT INTO moves SELECT md5('tap:{back}:' || i)::uuid, md5('card:' || card_no)::uuid,"
    " md5('payable:bus-' || operator)::uuid, amount, 301,"
    " extract(epoch FROM at)::bigint * 1000000000 + i % 1000000000 FROM gen",
)
_LEDGER_AFTER = (
    "INSERT INTO ledger_ledgers (id, name, currency, scale, timestamp)"
    " VALUES (156, 'CNY', 'CNY', 2, 1)",
    "INSERT INTO ledger_accounts (id, ledger, code, name, flags, user_data_128, user_data_64,"
    " user_data_32, debits_pending, debits_posted, credits_pending, credits_posted, timestamp)"
    " SELECT md5(name)::uuid, 156, code, name, 0, NULL, 0, 0, 0, 0, 0, 0,"
    " row_number() OVER (ORDER BY name) FROM names",
    "CREATE TEMP TABLE runs AS SELECT id, aid, sum(dr) OVER w AS dr, sum(cr) OVER w AS cr FROM ("
    " SELECT id, debit AS aid, ts, amount AS dr, 0 AS cr FROM moves UNION ALL"
    " SELECT id, credit, ts, 0, amount FROM moves) AS sides"
    " WINDOW w AS (PARTITION BY aid ORDER BY ts)",
    "CREATE INDEX ON runs (id, aid)",
    "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, pending_id,"
    " reverses_id, ledger, code, flags, timeout_s, user_data_128, user_data_64, user_data_32,"
    " effective_at, timestamp, dr_debits_pending, dr_debits_posted, dr_credits_pending,"
    " dr_credits_posted, cr_debits_pending, cr_debits_posted, cr_credits_pending,"
    " cr_credits_posted) SELECT m.id, m.debit, m.credit, m.amount, NULL, NULL, 156, m.code, 0,"
    " 0, NULL, 0, 0, NULL, m.ts, 0, d.dr, 0, d.cr, 0, c.dr, 0, c.cr FROM moves m"
    " JOIN runs d ON d.id = m.id AND d.aid = m.debit"
    " JOIN runs c ON c.id = m.id AND c.aid = m.credit ORDER BY m.ts",
    "UPDATE ledger_accounts a SET debits_posted = s.dr, credits_posted = s.cr FROM ("
    " SELECT aid, max(dr) AS dr, max(cr) AS cr FROM runs GROUP BY aid) s WHERE a.id = s.aid",
    "UPDATE ledger_clock SET last_ns = (SELECT max(timestamp) FROM ledger_transfers)",
)

# An earlier night's finished run, and the ledger window its check read (nothing found).
_NIGHT = (
    "INSERT INTO recon_runs (business_day, trigger, state, started_at, finished_at,"
    " breaks_found, breaks_new, breaks_closed, breaks_open, ledger_since_ns, ledger_until_ns)"
    " VALUES ($1, 'bench', 'finished', now(), now(), 0, 0, 0, 0, $2, $3)"
)

_CEILING = (
    "SELECT count(*), sum(amount_fen), sum(balance_after_fen) FROM tap_records",
    "SELECT count(*), sum(amount_fen), sum(balance_after_fen) FROM cleared_taps",
    "SELECT count(*), sum(amount) FROM ledger_transfers",
)


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def fill(
    url: str,
    taps: int,
    cards: int,
    terminals: int,
    calendar: BusinessCalendar,
    history_days: int = 0,
) -> None:
    """The day reconciled, after `history_days` earlier days of the same size (oldest first, as
    the tables grow): their taps on cards and terminals of their own, staged and cleared."""
    connection = await asyncpg.connect(_dsn(url))
    values = {
        "operators": OPERATORS,
        "batch": RECORDS_PER_BATCH,
        "first_load": FIRST_LOAD_FEN,
    }
    try:
        async with connection.transaction():
            for step in (*_PARTICIPANTS, *_LEDGER_BEFORE):
                await connection.execute(step.format(**values))
            for back in range(history_days, -1, -1):
                day = DAY - timedelta(days=back)
                after = await connection.fetchval("SELECT coalesce(max(id), 0) FROM tap_records")
                await connection.execute("DROP TABLE IF EXISTS gen")
                await connection.execute(
                    _GENERATE,
                    cards,
                    taps,
                    terminals,
                    calendar.day_start(day),
                    OPERATORS,
                    FIRST_LOAD_FEN,
                    str(31 + back),
                    TERMINAL_BASE * (back + 1),
                )
                for step in _DAY_STEPS:
                    await connection.execute(step.format(day=day, after=after, **values))
                day_ns = ledger_ns(calendar.day_start(day))
                for step in _LEDGER_DAY:
                    await connection.execute(step.format(day_ns=day_ns, back=back, **values))
            for step in _LEDGER_AFTER:
                await connection.execute(step.format(**values))
            since = 0
            for back in range(max(history_days, 1), 0, -1):
                until = ledger_ns(calendar.day_start(DAY - timedelta(days=back - 1)))
                await connection.execute(_NIGHT, DAY - timedelta(days=back), since, until)
                since = until
        for table in (
            "tap_records",
            "cleared_taps",
            "ingest_batches",
            "ledger_transfers",
            "ledger_accounts",
        ):
            await connection.execute(f"VACUUM ANALYZE {table}")
    finally:
        await connection.close()


async def ceiling(url: str) -> tuple[float, int]:
    """PostgreSQL's own full scan of tap_records, cleared_taps and ledger_transfers: seconds and
    rows read."""
    connection = await asyncpg.connect(_dsn(url))
    try:
        started = time.perf_counter()
        rows = 0
        for query in _CEILING:
            rows += (await connection.fetchrow(query))[0]
        return time.perf_counter() - started, rows
    finally:
        await connection.close()


async def reconcile(
    url: str, calendar: BusinessCalendar, *, sweep: bool = False
) -> tuple[float, object]:
    engine = create_async_engine(url)
    try:
        started = time.perf_counter()
        async with engine.begin() as conn:
            summary = await run_day(
                conn, DAY, calendar=calendar, trigger="bench", sweep_accounts=sweep
            )
        return time.perf_counter() - started, summary
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--taps", type=int, default=1_000_000)
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--terminals", type=int, default=1_000)
    parser.add_argument(
        "--history-days",
        type=int,
        default=0,
        help=f"earlier days of the same size in the tables first (0 .. {HISTORY_DAYS_MAX})",
    )
    parser.add_argument(
        "--all-accounts",
        action="store_true",
        help="the run also checks every ledger account against its last entry (the weekly "
        "sweep), not only the accounts the day touched",
    )
    args = parser.parse_args()
    if not 0 <= args.history_days <= HISTORY_DAYS_MAX:
        parser.error(f"--history-days must be 0 .. {HISTORY_DAYS_MAX}")
    if args.taps < 1 or args.cards < 1 or not 1 <= args.terminals < TERMINAL_BASE:
        parser.error(f"--taps and --cards must be at least 1, --terminals 1 .. {TERMINAL_BASE - 1}")
    if not args.url.startswith("postgresql"):
        parser.error("the reconciliation benchmark runs on PostgreSQL (postgresql+asyncpg://...)")
    name = make_url(args.url).database or ""
    if "bench" not in name or name in SYSTEM_DATABASES:
        parser.error(
            f"the benchmark drops and re-creates the database it is given, and {name!r} is not"
            " named as one of its own: give it a name with 'bench' in it (it makes it), e.g."
            " .../onecard_bench_recon, or leave out --url"
        )
    calendar = BusinessCalendar()
    try:
        fresh_database(args.url)
    except ClearingError as error:  # unreachable, refused: one line
        raise SystemExit(f"error: {error}") from None
    started = time.perf_counter()
    asyncio.run(fill(args.url, args.taps, args.cards, args.terminals, calendar, args.history_days))
    fill_s = time.perf_counter() - started
    print(
        f"filled {args.taps} taps a day, {args.history_days} history days, in {fill_s:.1f} s",
        file=sys.stderr,
    )
    scan_s, scanned = asyncio.run(ceiling(args.url))  # warm the cache the same way for both
    seconds, summary = asyncio.run(reconcile(args.url, calendar, sweep=args.all_accounts))
    # Python's peak memory from a second run: tracing every allocation slows Python several
    # times over, so the timed run is not traced.
    tracemalloc.start()
    asyncio.run(reconcile(args.url, calendar, sweep=args.all_accounts))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    scan_s = min(scan_s, asyncio.run(ceiling(args.url))[0])
    result = {
        "taps": args.taps,
        "cards": args.cards,
        "terminals": args.terminals,
        "history_days": args.history_days,
        "all_accounts": args.all_accounts,
        "seconds": round(seconds, 2),
        "taps_per_s": round(args.taps / seconds),
        "scan_seconds": round(scan_s, 2),
        "scan_rows": scanned,
        "scan_rows_per_s": round(scanned / scan_s),
        "ratio_to_scan": round(seconds / scan_s, 1),
        "python_peak_mib": round(peak / 2**20, 1),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "breaks_found": summary.found,
        "checks": {c.name: [c.matched, c.total, round(c.seconds, 2)] for c in summary.checks},
        "fill_seconds": round(fill_s, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
