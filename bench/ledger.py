"""Ledger benchmark: single transfers (1 and 16 clients, 1,000 accounts and 10 hot accounts),
batches of 100, 1,000 and 8,000, the COPY ceiling and a pgledger-style reference, in one run.

Two COPY ceilings, the same rows in transactions of 8,000: into a table with a primary key only
(`copy`, the issue's ceiling) and into one with every index of ledger_transfers (`copy_indexed`:
the two account-history b-trees cost COPY about two thirds of its speed, so this is the most a
ledger with those reads can store). Both start empty, while ledger_transfers holds every transfer
of the database's earlier runs, and a b-tree on random ids (the primary key) or on many accounts
takes a row more slowly the larger it is: so both are measured again on tables already holding as
many rows as ledger_transfers (`copy_at_size`, `copy_indexed_at_size`; at most --at-size-max).

    ONECARD_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/onecard_bench \
        .venv/bin/python bench/ledger.py

Applies the migrations, works in fresh accounts of its own (a run namespace), prints a table and
ends with one line of JSON holding every figure. Measures; asserts nothing about speed.

The pgledger-style reference is pgledger's design written here from its description (a pure
PostgreSQL ledger: one PL/pgSQL call per transfer in its own transaction, accounts locked in id
order, balance and version updated, one transfer row and two entry rows inserted), in tables of
the run's own that are dropped afterwards. `single_c16` and `hot_c16` are reported as ratios to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from rich.console import Console
from rich.table import Table

from clearing import db
from clearing.errors import ClearingError
from ledger.backends import transfer_values
from ledger.errors import InvariantError, invariant
from ledger.ids import account_id, transfer_id
from ledger.tables import TRANSFER_COLUMNS
from ledger.types import (
    Account,
    AccountFlags,
    CreateTransferResult,
    LedgerSpec,
    Transfer,
)
from ledger.writer import Ledger

CNY = 1
ACCOUNTS_WIDE = 1_000
ACCOUNTS_HOT = 10
SCALE_MAX = 100.0
AT_SIZE_MAX = 2_000_000  # rows a ceiling table is filled with at most, to match the ledger's
FUND_FEN = 10**12  # every card starts rich enough that no benchmark transfer is refused
OK = (CreateTransferResult.OK,)


# pgledger's design, written for this benchmark (see the module docstring); {p} = run prefix.
_PGLEDGER_SCHEMA = """
CREATE TABLE {p}_accounts (
    id text PRIMARY KEY, name text NOT NULL, currency text NOT NULL,
    balance bigint NOT NULL DEFAULT 0, version bigint NOT NULL DEFAULT 0,
    allow_negative boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE {p}_transfers (
    id text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    from_id text NOT NULL REFERENCES {p}_accounts, to_id text NOT NULL REFERENCES {p}_accounts,
    amount bigint NOT NULL CHECK (amount > 0), created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (from_id <> to_id));
CREATE INDEX ON {p}_transfers (from_id);
CREATE INDEX ON {p}_transfers (to_id);
CREATE INDEX ON {p}_transfers (created_at);
CREATE TABLE {p}_entries (
    id text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    account_id text NOT NULL REFERENCES {p}_accounts,
    transfer_id text NOT NULL REFERENCES {p}_transfers, amount bigint NOT NULL,
    previous_balance bigint NOT NULL, current_balance bigint NOT NULL,
    account_version bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON {p}_entries (account_id);
CREATE INDEX ON {p}_entries (transfer_id);
CREATE FUNCTION {p}_transfer(src text, dst text, amt bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    s {p}_accounts;
    d {p}_accounts;
    tid text;
BEGIN
    PERFORM 1 FROM {p}_accounts WHERE id IN (src, dst) ORDER BY id FOR UPDATE;
    UPDATE {p}_accounts SET balance = balance - amt, version = version + 1, updated_at = now()
        WHERE id = src RETURNING * INTO s;
    IF NOT s.allow_negative AND s.balance < 0 THEN
        RAISE EXCEPTION 'account % may not go negative', src;
    END IF;
    UPDATE {p}_accounts SET balance = balance + amt, version = version + 1, updated_at = now()
        WHERE id = dst RETURNING * INTO d;
    IF s.currency <> d.currency THEN
        RAISE EXCEPTION 'currencies differ';
    END IF;
    INSERT INTO {p}_transfers (from_id, to_id, amount) VALUES (src, dst, amt)
        RETURNING id INTO tid;
    INSERT INTO {p}_entries
        (account_id, transfer_id, amount, previous_balance, current_balance, account_version)
    VALUES (src, tid, -amt, s.balance + amt, s.balance, s.version),
           (dst, tid, amt, d.balance - amt, d.balance, d.version);
    RETURN tid;
END
$$;
"""


# Rows a ceiling table is filled with in one statement (see _fill).
FILL_STEP = 100_000


async def _fill(raw: asyncpg.Connection, table: str, accounts: list[int], rows: int) -> None:
    """Insert `rows` transfer-shaped rows into `table`, made by the server: random ids, two
    different accounts of `accounts`, timestamps below every measured row's (those start at 1),
    so that each account's history grows at its end as the ledger's does."""
    ids = [uuid.UUID(int=a) for a in accounts]
    for first in range(0, rows, FILL_STEP):
        await raw.execute(
            f"INSERT INTO {table} (id, debit_account_id, credit_account_id, amount, ledger, code,"
            " flags, timeout_s, user_data_64, user_data_32, timestamp,"
            " dr_debits_pending, dr_debits_posted, dr_credits_pending, dr_credits_posted,"
            " cr_debits_pending, cr_debits_posted, cr_credits_pending, cr_credits_posted)"
            " SELECT gen_random_uuid(), ($1::uuid[])[1 + d], ($1::uuid[])[1 + (d + 1 + c) % n],"
            " 1 + i % 500, 1, 1, 0, 0, 0, 0, i - $3 - 1, 0, i, 0, i, 0, i, 0, i"
            " FROM (SELECT i, cardinality($1::uuid[]) AS n,"
            "  floor(random() * cardinality($1::uuid[]))::int AS d,"
            "  floor(random() * (cardinality($1::uuid[]) - 1))::int AS c"
            "  FROM generate_series($2::bigint, $4::bigint) AS i) AS s",
            ids,
            first + 1,
            rows,
            min(rows, first + FILL_STEP),
        )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


class Bench:
    def __init__(
        self, url: str, scale: float, *, nogroup: bool = True, at_size_max: int = 0
    ) -> None:
        self.url = url
        self.at_size_max = at_size_max
        self.nogroup = nogroup
        self.scale = scale
        self.run = uuid.uuid4().hex[:8]
        self.seq = 0
        self.figures: dict[str, float] = {}
        self.rows: list[tuple[str, str, str, str, str]] = []
        self.load = ""

    def n(self, count: int) -> int:
        return max(1, int(count * self.scale))

    def next_id(self) -> int:
        self.seq += 1
        return transfer_id(f"bench:{self.run}:{self.seq}")

    def transfer(self, accounts: list[int], rng: random.Random) -> Transfer:
        debit, credit = rng.sample(accounts, 2)
        return Transfer(self.next_id(), debit, credit, rng.randint(1, 500), CNY, 1)

    async def setup(self, led: Ledger, label: str, count: int) -> list[int]:
        await led.create_ledgers([LedgerSpec(id=CNY, name="CNY in fen")])
        names = [f"bench:{self.run}:{label}:{k}" for k in range(count)]
        funding_name = f"bench:{self.run}:{label}:funding"
        accounts = [Account(account_id(funding_name), CNY, 1, funding_name)] + [
            Account(account_id(n), CNY, 2, n, flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
            for n in names
        ]
        results = await led.create_accounts(accounts)
        invariant(all(r.value == "ok" for r in results), f"accounts refused: {results[:5]}")
        ids = [a.id for a in accounts[1:]]
        fund = [Transfer(self.next_id(), accounts[0].id, i, FUND_FEN, CNY, 1) for i in ids]
        funded = await led.create_transfers(fund)
        invariant(
            funded == [CreateTransferResult.OK] * len(fund), f"funding refused: {set(funded)}"
        )
        return ids

    async def singles(
        self, led: Ledger, accounts: list[int], clients: int, per_client: int
    ) -> tuple[float, float, float, int]:
        """Each client posts one transfer per call; returns tps, p50 ms, p99 ms, failures."""
        latencies: list[float] = []
        failures = 0

        async def client(k: int) -> None:
            nonlocal failures
            rng = random.Random(k)
            for _ in range(per_client):
                t = self.transfer(accounts, rng)
                start = time.perf_counter()
                try:
                    [result] = await led.create_transfers([t])
                except Exception:  # noqa: BLE001 - counted and reported, the run goes on
                    failures += 1
                    continue
                latencies.append(time.perf_counter() - start)
                if result not in OK:
                    failures += 1

        start = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        elapsed = time.perf_counter() - start
        return (
            len(latencies) / elapsed,
            percentile(latencies, 0.50) * 1e3,
            percentile(latencies, 0.99) * 1e3,
            failures,
        )

    async def batches(self, led: Ledger, accounts: list[int], size: int, total: int) -> float:
        rng = random.Random(size)
        count = max(1, total // size)
        batches = [[self.transfer(accounts, rng) for _ in range(size)] for _ in range(count)]
        start = time.perf_counter()
        for batch in batches:
            results = await led.create_transfers(batch)
            if results != [CreateTransferResult.OK] * size:
                raise InvariantError(f"transfers refused: {set(results)}")
        return count * size / (time.perf_counter() - start)

    async def copy_ceiling(
        self, led: Ledger, rows: int, size: int, *, indexed: bool, holding: int = 0
    ) -> tuple[float, int]:
        """COPY the same number of transfer-shaped rows into a table of the same shape with a
        primary key (the reference ceiling), in transactions of `size` rows. `indexed`: with
        every index of ledger_transfers instead (its two account-history b-trees, its BRIN and
        partial indexes): what PostgreSQL can store of the ledger's own rows at best.
        `holding`: the table already holds that many rows (inserted before the clock starts,
        earlier in time than the measured ones), as the ledger's table does: a b-tree on random
        ids takes a row more slowly the larger it is."""
        table = f"bench_copy_{self.run}_{'indexed' if indexed else 'pk'}"
        keys = " INCLUDING INDEXES" if indexed else ", PRIMARY KEY (id)"
        rng = random.Random(7)
        accounts = [account_id(f"x{k}") for k in range(ACCOUNTS_WIDE)]
        records = []
        for k in range(rows):
            t = self.transfer(accounts, rng)
            after = (0, k, 0, k)
            records.append(transfer_values(replace(t, timestamp=k + 1)) + after + after)
        async with led.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            await raw.execute(
                f"CREATE TABLE {table} (LIKE ledger_transfers INCLUDING DEFAULTS{keys})"
            )
            try:
                await _fill(raw, table, accounts, holding)
                held = await raw.fetchval(f"SELECT count(*) FROM {table}")
                start = time.perf_counter()
                for i in range(0, rows, size):
                    async with raw.transaction():
                        await raw.copy_records_to_table(
                            table, records=records[i : i + size], columns=list(TRANSFER_COLUMNS)
                        )
                elapsed = time.perf_counter() - start
            finally:
                await raw.execute(f"DROP TABLE {table}")
            await conn.rollback()
        return rows / elapsed, held

    async def pgledger(self, accounts: int, clients: int, per_client: int) -> tuple[float, ...]:
        """pgledger-style reference: one PL/pgSQL call per transfer, each its own transaction,
        `clients` connections; returns tps, p50 ms, p99 ms, failures."""
        p = f"pgl_{self.run}_{accounts}"
        dsn = self.url.replace("postgresql+asyncpg://", "postgresql://")
        pool = await asyncpg.create_pool(dsn, min_size=clients, max_size=clients)
        try:
            async with pool.acquire() as conn:
                await conn.execute(_PGLEDGER_SCHEMA.format(p=p))
                await conn.executemany(
                    f"INSERT INTO {p}_accounts (id, name, currency, balance, allow_negative)"
                    " VALUES ($1, $1, 'CNY', $2, false)",
                    [(f"a{k}", FUND_FEN) for k in range(accounts)],
                )
            latencies: list[float] = []
            failures = 0
            sql = f"SELECT {p}_transfer($1, $2, $3)"

            async def client(k: int) -> None:
                nonlocal failures
                rng = random.Random(k)
                async with pool.acquire() as conn:
                    for _ in range(per_client):
                        src, dst = rng.sample(range(accounts), 2)
                        start = time.perf_counter()
                        try:
                            await conn.fetchval(sql, f"a{src}", f"a{dst}", rng.randint(1, 500))
                        except asyncpg.PostgresError:
                            failures += 1
                            continue
                        latencies.append(time.perf_counter() - start)

            start = time.perf_counter()
            await asyncio.gather(*(client(k) for k in range(clients)))
            elapsed = time.perf_counter() - start
        finally:
            with contextlib.suppress(asyncpg.PostgresError):
                async with pool.acquire() as conn:
                    await conn.execute(
                        f"DROP FUNCTION IF EXISTS {p}_transfer;"
                        f" DROP TABLE IF EXISTS {p}_entries, {p}_transfers, {p}_accounts"
                    )
            await pool.close()
        return (
            len(latencies) / elapsed,
            percentile(latencies, 0.50) * 1e3,
            percentile(latencies, 0.99) * 1e3,
            failures,
        )

    def record(
        self, name: str, what: str, tps: float, p50: float | None, p99: float | None
    ) -> None:
        self.figures[f"{name}_tps"] = round(tps, 1)
        if p50 is not None and p99 is not None:
            self.figures[f"{name}_p50_ms"] = round(p50, 2)
            self.figures[f"{name}_p99_ms"] = round(p99, 2)
        self.rows.append(
            (
                name,
                what,
                f"{tps:,.0f}",
                "" if p50 is None else f"{p50:.2f}",
                "" if p99 is None else f"{p99:.2f}",
            )
        )

    async def nogroup_cases(self, console: Console, wide: list[int], hot: list[int]) -> None:
        """One database transaction per call, no group commit: lock ordering vs serializable."""
        for isolation in ("lock_ordering", "serializable"):
            async with await Ledger.open(
                self.url, group_commit=False, pool_size=16, isolation=isolation
            ) as led:
                for label, accounts in (("wide", wide), ("hot", hot)):
                    name = f"nogroup_{isolation}_{label}_c16"
                    tps, p50, p99, failed = await self.singles(led, accounts, 16, self.n(100))
                    self.record(name, f"16 clients, {label}, one txn per call", tps, p50, p99)
                    self.figures[f"{name}_failures"] = failed
                    self.figures[f"{name}_retries"] = sum(led.retries.values())
                    console.log(f"{name}: {tps:,.0f}/s p99 {p99:.1f} ms, retries {led.retries}")

    async def main(self, console: Console) -> None:
        async with await Ledger.open(self.url, pool_size=20) as led:
            wide = await self.setup(led, "wide", ACCOUNTS_WIDE)
            hot = await self.setup(led, "hot", ACCOUNTS_HOT)
            # warm up connections and plans
            await self.singles(led, wide, 4, 20)

            singles: list[tuple[str, str, list[int], int, int]] = [
                ("single_c1", "1 client, 1,000 accounts", wide, 1, self.n(1_000)),
                ("single_c16", "16 clients, 1,000 accounts", wide, 16, self.n(400)),
                ("hot_c1", "1 client, 10 hot accounts", hot, 1, self.n(1_000)),
                ("hot_c16", "16 clients, 10 hot accounts", hot, 16, self.n(400)),
            ]
            for name, what, accounts, clients, per_client in singles:
                tps, p50, p99, failed = await self.singles(led, accounts, clients, per_client)
                self.record(name, what + " (group commit)", tps, p50, p99)
                self.figures[f"{name}_failures"] = failed
                console.log(f"{name}: {tps:,.0f}/s p99 {p99:.1f} ms")

            for name, what, count in (
                ("pgledger_c16", "pgledger-style, 16 clients, 1,000 accounts", ACCOUNTS_WIDE),
                ("pgledger_hot_c16", "pgledger-style, 16 clients, 10 hot accounts", ACCOUNTS_HOT),
            ):
                tps, p50, p99, failed = await self.pgledger(count, 16, self.n(400))
                self.record(name, what, tps, p50, p99)
                self.figures[f"{name}_failures"] = failed
                console.log(f"{name}: {tps:,.0f}/s p99 {p99:.1f} ms")

            total = self.n(40_000)
            for size in (100, 1_000, 8_000):
                tps = await self.batches(led, wide, size, max(total, size))
                self.record(f"batch_{size}", f"batches of {size:,}", tps, None, None)
                console.log(f"batch_{size}: {tps:,.0f}/s")

            async with led.engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                ledger_rows = await raw.fetchval("SELECT count(*) FROM ledger_transfers")
                await conn.rollback()
            self.figures["ledger_rows"] = ledger_rows
            holding = min(ledger_rows, self.at_size_max)
            console.log(f"ledger_transfers holds {ledger_rows:,} rows")

            copy_rows = max(total, 8_000) // 8_000 * 8_000
            ceilings = [
                ("copy", "COPY, same rows, table with PK", False),
                ("copy_indexed", "COPY, same rows, table with the ledger's indexes", True),
            ]
            if holding:
                ceilings += [
                    ("copy_at_size", f"the same, table with PK holding {holding:,} rows", False),
                    (
                        "copy_indexed_at_size",
                        f"the same, the ledger's indexes, holding {holding:,} rows",
                        True,
                    ),
                ]
            for name, what, indexed in ceilings:
                filled = holding if name.endswith("_at_size") else 0
                if filled:
                    console.log(f"{name}: filling its table with {filled:,} rows first")
                rate, held = await self.copy_ceiling(
                    led, copy_rows, 8_000, indexed=indexed, holding=filled
                )
                if filled:
                    self.figures["at_size_rows"] = held
                self.figures[f"{name}_rows_per_s"] = round(rate, 1)
                self.rows.append((name, what, f"{rate:,.0f}", "", ""))
                console.log(f"{name}: {rate:,.0f} rows/s")

        if self.nogroup:
            await self.nogroup_cases(console, wide, hot)

        f = self.figures
        f["batch_ratio_to_copy"] = round(f["batch_8000_tps"] / f["copy_rows_per_s"], 3)
        f["batch_ratio_to_copy_indexed"] = round(
            f["batch_8000_tps"] / f["copy_indexed_rows_per_s"], 3
        )
        for name in ("copy_at_size", "copy_indexed_at_size"):
            if f"{name}_rows_per_s" in f:
                ratio = f["batch_8000_tps"] / f[f"{name}_rows_per_s"]
                f[f"batch_ratio_to_{name}"] = round(ratio, 3)
        f["single_c16_vs_pgledger"] = round(f["single_c16_tps"] / f["pgledger_c16_tps"], 2)
        f["hot_c16_vs_pgledger"] = round(f["hot_c16_tps"] / f["pgledger_hot_c16_tps"], 2)


def _report(bench: Bench, console: Console) -> None:
    table = Table(title=f"ledger benchmark on {bench.url.split('@')[-1]}")
    for column in ("case", "what", "transfers/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column in ("case", "what") else "right")
    for row in bench.rows:
        table.add_row(*row)
    console.print(table)
    console.print(
        f"batched / COPY ceiling: {bench.figures['batch_ratio_to_copy']:.1%}  "
        f"(batch_8000 {bench.figures['batch_8000_tps']:,.0f}/s vs COPY "
        f"{bench.figures['copy_rows_per_s']:,.0f} rows/s); / COPY into a table with the "
        f"ledger's indexes: {bench.figures['batch_ratio_to_copy_indexed']:.1%} "
        f"({bench.figures['copy_indexed_rows_per_s']:,.0f} rows/s)"
    )
    f = bench.figures
    if "batch_ratio_to_copy_at_size" in f:
        console.print(
            f"ledger_transfers held {f['ledger_rows']:,} rows; against tables holding"
            f" {f['at_size_rows']:,}: {f['batch_ratio_to_copy_at_size']:.1%} of COPY with PK"
            f" ({f['copy_at_size_rows_per_s']:,.0f} rows/s),"
            f" {f['batch_ratio_to_copy_indexed_at_size']:.1%} with the ledger's indexes"
            f" ({f['copy_indexed_at_size_rows_per_s']:,.0f} rows/s)"
        )
    console.print(
        f"16 clients / pgledger-style: {bench.figures['single_c16_vs_pgledger']:.2f}x on 1,000 "
        f"accounts, {bench.figures['hot_c16_vs_pgledger']:.2f}x on 10 hot accounts "
        f"(p99 {bench.figures['single_c16_p99_ms']:.1f} / {bench.figures['hot_c16_p99_ms']:.1f} ms)"
    )
    console.print(f"load average while measuring: {bench.load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="Multiply every operation count (0.1 = quick)."
    )
    parser.add_argument(
        "--at-size-max",
        type=int,
        default=AT_SIZE_MAX,
        help="The ceilings are also measured on tables already holding as many rows as"
        f" ledger_transfers does, at most this many (default {AT_SIZE_MAX:,}; 0: not measured).",
    )
    parser.add_argument(
        "--skip-nogroup",
        action="store_true",
        help="Skip the one-transaction-per-call cases (lock ordering vs serializable).",
    )
    args = parser.parse_args()
    if args.at_size_max < 0:
        parser.error("--at-size-max must be 0 or more (0: no ceilings at the ledger's size)")
    if not 0 < args.scale <= SCALE_MAX:
        parser.error(f"--scale must be more than 0 and at most {SCALE_MAX:g}")
    url = os.environ.get("ONECARD_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        raise SystemExit(
            "set ONECARD_DATABASE_URL=postgresql+asyncpg://user@host/db: the benchmark measures "
            "PostgreSQL (the COPY ceiling needs it)"
        )
    try:
        db.upgrade(url)
    except ClearingError as error:  # unreachable, no such database, bad URL: one line
        raise SystemExit(f"error: {error}") from None
    console = Console(stderr=True)
    bench = Bench(url, args.scale, nogroup=not args.skip_nogroup, at_size_max=args.at_size_max)
    asyncio.run(bench.main(console))
    bench.load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    bench.figures["load_avg_1m"] = round(os.getloadavg()[0], 2)
    _report(bench, Console())
    print(json.dumps(bench.figures, sort_keys=True))


if __name__ == "__main__":
    main()
