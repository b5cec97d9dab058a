"""Benchmark of the clearing engine on PostgreSQL: `python bench/clearing.py --taps 1000000`.

Builds a city (operators, terminals, cards with money on them), makes `--taps` genuine tap
records (each with the TAC its card computes, 1 % of them uploaded twice), then times:
- ingest: the ingestion service storing the signed-batch bodies and staging every record;
- clear: the engine verifying every TAC, deduplicating and posting through the ledger;
and, in the same run, the COPY ceiling: rows/s PostgreSQL accepts into a table shaped like the
ledger's transfers. Ends with one JSON line (taps, seconds, taps_per_s, copy_rows_per_s, ...).

`--url` (or ONECARD_DATABASE_URL) names the database: it is migrated to the current schema
(PostgreSQL's own databases and one holding tables of something else are refused) and the run works in a namespace of its own (its own participants, terminals and cards), so a
database an earlier run used serves again; a database with records of someone else still waiting
to be cleared is refused (the engine clears everything staged). By default a fresh
`onecard_bench` database is made on the local PostgreSQL (it is dropped and re-created).

`--workers 1,2` clears the day with each number of workers in turn (each on a day of its own,
in its own namespace): the backlog split by card shards (clearing/engine/shards.py), each worker
a process running what the Celery task `clearing.clear_shards` runs. `--ingest-processes 2` ingests
in that many processes side by side, as several API workers do (each its own terminals' uploads).
One worker, too, clears in a process of its own: this process holds the day's bodies and the
city, which Python's cycle collector would walk through. `--profile FILE` writes a cProfile of
ingest and clear (one worker, both in this process) for `python -m pstats FILE`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pickle
import random
import resource
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from cardio.keystore import create_key_store
from clearing import books, db
from clearing.books import LEDGER_CNY, TransferCode
from clearing.engine.service import (
    CHUNK_RECORDS_DEFAULT,
    CHUNK_RECORDS_MAX,
    ClearingEngine,
    EngineConfig,
    load_verifier,
)
from clearing.engine.shards import ALL_SHARDS, ShardRange, split
from clearing.engine.synthetic import SyntheticCard, TapSigner, purchase
from clearing.errors import ClearingError
from clearing.ingest import service as ingest_service
from clearing.ingest.schemas import BatchUpload
from clearing.registry.models import Card, Participant, Terminal
from ledger import Transfer, transfer_id
from ledger.types import BATCH_MAX
from ledger.writer import Ledger

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/onecard_bench"
OPERATORS = 10
TERMINALS = 1000  # a city's (a small day has fewer: one per 10 taps, so a test runs fast)
TAPS_PER_CARD = 10
RECORDS_PER_BATCH = 5000  # the protocol's bound
FARE_FEN = 200
DUPLICATE_SHARE = 0.01


def fresh_database(url: str) -> None:
    """Drop and re-create the bench database, then migrate it (blocking)."""
    parsed = make_url(url)
    name = parsed.database

    async def recreate() -> None:
        admin = create_async_engine(
            parsed.set(database="postgres").render_as_string(hide_password=False),
            isolation_level="AUTOCOMMIT",
        )
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()

    try:
        asyncio.run(recreate())
    except (OSError, DBAPIError) as error:  # unreachable, refused: named in one line
        failure = db.connection_failure(url, error)
        if failure is None:
            raise
        raise failure from error
    db.upgrade(url)


# PostgreSQL's own databases: never the benchmark's (it would migrate onecard's schema into them).
SYSTEM_DATABASES = frozenset({"postgres", "template0", "template1"})


async def _foreign_tables(url: str) -> int:
    """Tables of the database's schema when onecard never migrated it (0: empty, or onecard's)."""
    if await db.current_revision(url) is not None:
        return 0
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            query = "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
            return int((await conn.execute(text(query))).scalar_one())
    finally:
        await engine.dispose()


def given_database(url: str) -> None:
    """Migrate the database `--url` names, unless it is not the benchmark's to migrate: one of
    PostgreSQL's own, or one holding tables of something else (refused with a message)."""
    name = make_url(url).database or ""
    if name in SYSTEM_DATABASES:
        raise SystemExit(
            f"error: {name!r} is PostgreSQL's own database: give the benchmark one of its own"
            " (createdb NAME), or leave out --url and it makes onecard_bench"
        )
    foreign = asyncio.run(_foreign_tables(url))
    if foreign:
        raise SystemExit(
            f"error: database {name!r} holds {foreign} table(s) that are not onecard's: give the"
            " benchmark an empty database or one onecard migrated"
        )
    db.upgrade(url)  # migrates what it is given (a no-op when current)


class Space:
    """One run's namespace in the database: its participants, terminals and cards."""

    def __init__(self, number: int, taps: int) -> None:
        self.number = number
        terminals = min(TERMINALS, max(1, taps // 10))
        self.terminals = [f"{number:04X}{0x100000 + n:08X}" for n in range(terminals)]

    def operator(self, n: int) -> str:
        return f"bench{self.number}-bus-{n}"

    def card_no(self, n: int) -> str:
        return f"39{self.number:04d}{n:010d}"


async def claim_space(ledger: Ledger, taps: int) -> Space:
    """A namespace no earlier run used; refuses a database with records still to be cleared."""
    async with ledger.transaction() as conn:
        waiting = (
            await conn.execute(text("SELECT count(*) FROM tap_records WHERE state = 'received'"))
        ).scalar_one()
        if waiting:
            raise SystemExit(
                f"error: {waiting} staged records are waiting to be cleared in this database and"
                " the benchmark would clear them too: clear them first, or give it another"
                " database (without --url it makes its own)"
            )
        codes = await conn.execute(
            text("SELECT code FROM participants WHERE code LIKE 'bench%-bus-0'")
        )
        used = [int(c[0][5:-6]) for c in codes if c[0][5:-6].isdigit()]
    number = max(used, default=0) + 1
    if number > 9999:
        raise SystemExit("error: this database holds 9,999 benchmark runs: give it a fresh one")
    return Space(number, taps)


async def build_city(
    ledger: Ledger, space: Space, cards: int, key_path: Path
) -> tuple[TapSigner, list]:
    store = create_key_store(key_path)
    now = datetime.now(UTC)
    async with ledger.transaction() as conn:
        await books.open_books(ledger, conn=conn)
        await conn.execute(
            insert(Participant.__table__),
            [
                {
                    "code": space.operator(n),
                    "name": f"Bus Company {n}",
                    "kind": "bus_operator",
                    "commission_bp": 50,
                    "bank_account": f"62220000{n:08d}",
                    "bank_name": "Bank of the City",
                    "scheme": None,
                    "status": "active",
                    "created_at": now,
                }
                for n in range(OPERATORS)
            ],
        )
        rows = await conn.execute(
            text("SELECT code, id FROM participants WHERE code LIKE :like"),
            {"like": f"bench{space.number}-bus-%"},
        )
        ids = {r[0]: r[1] for r in rows}
        await conn.execute(
            insert(Terminal.__table__),
            [
                {
                    "terminal_id": terminal,
                    "participant_id": ids[space.operator(n % OPERATORS)],
                    "kind": "bus",
                    "line": f"L{n % 200}",
                    "public_key": f"{space.number:04x}{n:060x}",
                    "status": "active",
                    "seq_high": None,
                    "created_at": now,
                }
                for n, terminal in enumerate(space.terminals)
            ],
        )
    card_nos = [space.card_no(n) for n in range(cards)]
    for start in range(0, cards, BATCH_MAX):
        await issue_cards(ledger, card_nos[start : start + BATCH_MAX], now)
    try:
        signer = TapSigner(store, cached_contexts=True)
    except TypeError:  # an engine from before the signer kept cipher contexts
        signer = TapSigner(store)
    return signer, [SyntheticCard(no, TAPS_PER_CARD * FARE_FEN * 2) for no in card_nos]


async def issue_cards(ledger: Ledger, part: list[str], now: datetime) -> None:
    async with ledger.transaction() as conn:
        await conn.execute(
            insert(Card.__table__),
            [
                {
                    "card_no": no,
                    "card_type": "adult",
                    "holder_id": f"r{no}",
                    "holder_name": "Resident",
                    "scheme": None,
                    "status": "active",
                    "deposit_fen": 0,
                    "replaced_by": None,
                    "replaces": None,
                    "issued_at": now,
                    "status_changed_at": now,
                }
                for no in part
            ],
        )
        await books.ensure_accounts(ledger, [books.card(no) for no in part], conn=conn)
        results = await ledger.create_transfers(
            [
                Transfer(
                    id=transfer_id(f"bench-load:{no}"),
                    debit_account_id=books.account_of(books.BANK_ESCROW).id,
                    credit_account_id=books.account_of(books.card(no)).id,
                    amount=TAPS_PER_CARD * FARE_FEN * 2,
                    ledger=LEDGER_CNY,
                    code=TransferCode.CARD_FIRST_LOAD,
                )
                for no in part
            ],
            conn=conn,
        )
        if any(not r.ok for r in results):
            raise SystemExit("error: could not load the bench cards")


def make_taps(
    signer: TapSigner, space: Space, cards: list[SyntheticCard], taps: int
) -> dict[str, list[dict]]:
    """Per terminal, its journal: taps spread over the day, each with its card's TAC."""
    rng = random.Random(7)
    journals: dict[str, list[dict]] = {}
    seqs: dict[str, int] = {}
    start = datetime.now(UTC) - timedelta(hours=20)
    for n in range(taps):
        card = cards[n % len(cards)]
        number = rng.randrange(len(space.terminals))
        terminal = space.terminals[number]
        seqs[terminal] = seqs.get(terminal, 0) + 1
        record = purchase(
            signer,
            card,
            terminal_id=terminal,
            terminal_seq=seqs[terminal],
            amount_fen=FARE_FEN,
            at=start + timedelta(seconds=n * 60_000 // max(taps, 1)),
            route_id=f"L{number % 200}",
        )
        journals.setdefault(terminal, []).append(record)
    return journals


def make_bodies(journals: dict[str, list[dict]]) -> list[tuple[str, bytes]]:
    """Every journal as upload bodies, as the terminals send them (their work, not ingestion's:
    made before the ingest clock starts)."""
    rng = random.Random(11)
    bodies: list[tuple[str, bytes]] = []
    for terminal, records in journals.items():
        for start in range(0, len(records), RECORDS_PER_BATCH):
            part = records[start : start + RECORDS_PER_BATCH]
            bodies.append(
                (
                    terminal,
                    json.dumps({"batch_id": f"{terminal}-{start}", "records": part}).encode(),
                )
            )
            dupes = [r for r in part if rng.random() < DUPLICATE_SHARE]
            if dupes:  # re-sent inside another batch: staged twice, deduplicated by the engine
                body = {"batch_id": f"{terminal}-{start}-again", "records": dupes}
                bodies.append((terminal, json.dumps(body).encode()))
    return bodies


async def ingest(ledger: Ledger, bodies: list[tuple[str, bytes]], uploaders: int) -> int:
    """Store every upload body through the ingestion service (parsed and validated there), as
    `uploaders` connections at once (as terminals upload side by side), each its own terminals'
    bodies in their order, 20 bodies per transaction."""
    streams: list[list[tuple[str, bytes]]] = [[] for _ in range(uploaders)]
    lanes: dict[str, int] = {}
    for terminal, body in bodies:
        streams[lanes.setdefault(terminal, len(lanes) % uploaders)].append((terminal, body))
    counts = await asyncio.gather(*(_upload(ledger, stream) for stream in streams))
    return sum(counts)


def _ingest_part(url: str, path: str, uploaders: int) -> dict:
    """One ingesting process's share of the day (as one API worker serves its uploads): the
    bodies in `path`, stored through its own connections; its CPU and its backends' CPU."""
    cpu0 = time.process_time()
    bodies = pickle.loads(Path(path).read_bytes())

    async def go() -> dict:
        async with await Ledger.open(url) as ledger:
            before = await backends_cpu(ledger)
            staged = await ingest(ledger, bodies, uploaders)
            return {"staged": staged, "pg_before": before, "pg_after": await backends_cpu(ledger)}

    part = asyncio.run(go())
    part["cpu_s"] = time.process_time() - cpu0
    return part


async def ingest_day(
    url: str, ledger: Ledger, bodies: list[tuple[str, bytes]], uploaders: int, processes: int
) -> tuple[int, float, float, float]:
    """Ingest the day: in this process, or in `processes` processes side by side (as several
    API workers do), each its own terminals' bodies. (records, seconds, CPU s, PostgreSQL CPU s)."""
    pg0 = await backends_cpu(ledger)
    if processes == 1:
        t0, cpu0 = time.perf_counter(), time.process_time()
        staged = await ingest(ledger, bodies, uploaders)
        elapsed, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
        return staged, elapsed, cpu_s, cpu_between([pg0], [await backends_cpu(ledger)])
    shares: list[list[tuple[str, bytes]]] = [[] for _ in range(processes)]
    lanes: dict[str, int] = {}
    for terminal, body in bodies:
        shares[lanes.setdefault(terminal, len(lanes) % processes)].append((terminal, body))
    loop = asyncio.get_running_loop()
    with (
        tempfile.TemporaryDirectory() as tmp,
        ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool,
    ):
        paths = []
        for k, share in enumerate(shares):
            paths.append(Path(tmp) / f"share-{k}.pickle")
            paths[-1].write_bytes(pickle.dumps(share))
        del shares
        await asyncio.gather(*(loop.run_in_executor(pool, _warm, 1.0) for _ in range(processes)))
        t0 = time.perf_counter()
        parts = await asyncio.gather(
            *(loop.run_in_executor(pool, _ingest_part, url, str(p), uploaders) for p in paths)
        )
        elapsed = time.perf_counter() - t0
    pg_cpu_s = cpu_between([pg0] + [p["pg_before"] for p in parts], [p["pg_after"] for p in parts])
    return sum(p["staged"] for p in parts), elapsed, sum(p["cpu_s"] for p in parts), pg_cpu_s


async def _upload(ledger: Ledger, bodies: list[tuple[str, bytes]]) -> int:
    stored = 0
    for start in range(0, len(bodies), 20):
        async with ledger.transaction() as conn:
            session = AsyncSession(bind=conn)
            for terminal, body in bodies[start : start + 20]:
                upload = BatchUpload.model_validate_json(body)
                await ingest_service.store_batch(
                    session, terminal_id=terminal, body=body, upload=upload
                )
                stored += len(upload.records)
            await session.flush()
            await session.close()
    return stored


async def copy_ceiling(url: str, rows: int) -> float:
    """Rows/s of COPY into a table shaped like ledger_transfers (with its primary key)."""
    import asyncpg

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TEMP TABLE copy_ceiling (LIKE ledger_transfers INCLUDING DEFAULTS)"
        )
        await conn.execute("ALTER TABLE copy_ceiling ADD PRIMARY KEY (id)")
        columns = [
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_name = 'ledger_transfers' ORDER BY ordinal_position"
            )
        ]
        types = {
            r["column_name"]: r["data_type"]
            for r in await conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_name = 'ledger_transfers'"
            )
        }

        def value(name: str, n: int) -> object:
            if types[name] == "uuid":
                return (
                    uuid.UUID(int=n + 1)
                    if name in ("id", "debit_account_id")
                    else uuid.UUID(int=n + 2)
                )
            return n % 1000 + 1

        template = [[value(c, 0) for c in columns]]
        records = []
        for n in range(rows):
            row = list(template[0])
            row[columns.index("id")] = uuid.UUID(int=n + 1)
            records.append(tuple(row))
        started = time.perf_counter()
        for start in range(0, rows, 100_000):
            await conn.copy_records_to_table(
                "copy_ceiling", records=records[start : start + 100_000], columns=columns
            )
        return rows / (time.perf_counter() - started)
    finally:
        await conn.close()


async def backends_cpu(ledger: Ledger) -> dict[int, float]:
    """CPU seconds each PostgreSQL backend serving this database has used, by pid (empty where
    /proc does not show them: PostgreSQL on another machine)."""
    async with ledger.transaction() as conn:
        pids = (
            await conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND backend_type = 'client backend'"
                )
            )
        ).scalars()
        out: dict[int, float] = {}
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def cpu_between(befores: list[dict[int, float]], afters: list[dict[int, float]]) -> float:
    """PostgreSQL CPU seconds used between the snapshots: per backend, its last reading less its
    first (0 for one started in between). Workers running side by side see each other's
    backends: each backend counts once (summing each worker's own before/after counted the
    other worker's backends too, which doubled PostgreSQL's CPU for 2 workers)."""
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    for snapshot in befores:
        for pid, seconds in snapshot.items():
            first[pid] = min(first.get(pid, seconds), seconds)
    for snapshot in afters:
        for pid, seconds in snapshot.items():
            last[pid] = max(last.get(pid, seconds), seconds)
    return sum(seconds - first.get(pid, 0.0) for pid, seconds in last.items())


async def _clear_part(url: str, key_path: str, shards: ShardRange, chunk: int) -> dict:
    async with await Ledger.open(url) as ledger:
        engine = ClearingEngine(ledger, load_verifier(key_path), EngineConfig(chunk_records=chunk))
        before = await backends_cpu(ledger)
        # The whole range without naming it: the benchmark also measures engines from before
        # clearing was split by shards (a before/after comparison on one machine).
        split_by = {"shards": shards} if shards != ALL_SHARDS else {}
        summary = await engine.clear_pending(trigger="bench", **split_by)
        after = await backends_cpu(ledger)
    return {
        "pg_before": before,
        "pg_after": after,
        "seen": summary.records_seen,
        "posted": summary.posted,
        "duplicates": summary.duplicates,
        "quarantined": summary.quarantined,
    }


class CollectorTime:
    """Seconds Python's cycle collector ran in this process while the block ran."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def _note(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> CollectorTime:
        gc.callbacks.append(self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._note)


def clear_part(url: str, key_path: str, shards: ShardRange, chunk: int) -> dict:
    """One worker's part (what the Celery task clearing.clear_shards runs), in its process."""
    cpu0 = time.process_time()
    with CollectorTime() as collector:
        part = asyncio.run(_clear_part(url, key_path, shards, chunk))
    part["cpu_s"] = time.process_time() - cpu0
    part["gc_s"] = collector.seconds
    part["rss_mb"] = own_peak_rss_mb()
    return part


def own_peak_rss_mb() -> float:
    """This process's own peak resident memory (Linux's VmHWM; 0 where there is none). Not
    ru_maxrss: a spawned worker's counts the benchmark's process it was forked from."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _warm(seconds: float) -> int:
    time.sleep(seconds)  # keeps this process busy so the next warm-up starts another
    return os.getpid()


async def clear_day(
    url: str, key_path: Path, workers: int, chunk: int, in_process: bool = False
) -> tuple[dict, float]:
    """Clear the staged day with `workers` workers, each in a process of its own as a Celery
    worker is (`in_process`: one worker in this process, for the profile); its counters and
    the seconds it took."""
    if in_process:
        t0, cpu0 = time.perf_counter(), time.process_time()
        with CollectorTime() as collector:
            part = await _clear_part(url, str(key_path), ALL_SHARDS, chunk)
        part["cpu_s"] = time.process_time() - cpu0
        part["gc_s"] = collector.seconds
        return _summed([part]), time.perf_counter() - t0
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        # Start every worker (interpreter, imports) before the clock starts.
        warm = [loop.run_in_executor(pool, _warm, 1.0) for _ in range(workers)]
        await asyncio.gather(*warm)
        t0 = time.perf_counter()
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(pool, clear_part, url, str(key_path), shards, chunk)
                for shards in split(workers)
            )
        )
        clear_s = time.perf_counter() - t0
    return _summed(parts), clear_s


def _summed(parts: list[dict]) -> dict:
    """The workers' counters added up, PostgreSQL's CPU counted once per backend."""
    counters = [name for name in parts[0] if name not in ("pg_before", "pg_after", "rss_mb")]
    total = {name: sum(p[name] for p in parts) for name in counters}
    total["rss_mb"] = max(p.get("rss_mb", 0.0) for p in parts)  # the largest worker's peak
    total["pg_cpu_s"] = cpu_between([p["pg_before"] for p in parts], [p["pg_after"] for p in parts])
    return total


async def one_day(
    url: str, taps: int, chunk: int, workers: int, profile: str, uploaders: int, ingesters: int
) -> dict:
    """Build a city in a namespace of its own, make and ingest its day, clear it."""
    cards = max(1, taps // TAPS_PER_CARD)
    profiler = cProfile.Profile(time.process_time) if profile else None  # CPU, not waits
    with tempfile.TemporaryDirectory() as tmp:
        key_path = Path(tmp) / "keys.json"
        async with await Ledger.open(url) as ledger:
            space = await claim_space(ledger, taps)
            t0 = time.perf_counter()
            signer, synthetic = await build_city(ledger, space, cards, key_path)
            setup_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            bodies = make_bodies(make_taps(signer, space, synthetic, taps))
            generate_s = time.perf_counter() - t0
            print(
                f"city {space.number}: {cards} cards ({setup_s:.1f} s); taps and upload bodies"
                f" made in {generate_s:.1f} s",
                file=sys.stderr,
            )
            if profiler:
                profiler.enable()
            staged, ingest_s, ingest_cpu_s, ingest_pg_cpu_s = await ingest_day(
                url, ledger, bodies, uploaders, ingesters
            )
            del bodies
            print(
                f"ingest ({ingesters} process{'es' if ingesters > 1 else ''}): {staged} records"
                f" in {ingest_s:.1f} s",
                file=sys.stderr,
            )
        summary, clear_s = await clear_day(
            url, key_path, workers, chunk, in_process=profiler is not None
        )
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
    print(
        f"clear ({workers} worker{'s' if workers > 1 else ''}): {summary['seen']} records in"
        f" {clear_s:.1f} s (posted {summary['posted']}, duplicates {summary['duplicates']},"
        f" quarantined {summary['quarantined']}; Python's cycle collector"
        f" {summary['gc_s'] / max(summary['cpu_s'], 1e-9):.0%} of the workers' CPU)",
        file=sys.stderr,
    )
    if summary["posted"] != taps or summary["quarantined"]:
        raise SystemExit(f"error: wrong outcome with {workers} workers: {summary}")
    return {
        "workers": workers,
        "records_staged": staged,
        "seconds": round(ingest_s + clear_s, 2),
        "taps_per_s": round(taps / (ingest_s + clear_s), 1),
        "ingest_seconds": round(ingest_s, 2),
        "clear_seconds": round(clear_s, 2),
        "clear_records_per_s": round(staged / clear_s, 1),
        # CPU of the benchmark's own Python (the workers' for several): what the load of the
        # machine changes least. PostgreSQL's CPU is not in it.
        "ingest_cpu_us_per_record": round(ingest_cpu_s / staged * 1e6, 1),
        "ingest_postgresql_cpu_us_per_record": round(ingest_pg_cpu_s / staged * 1e6, 1),
        "clear_cpu_us_per_record": round(summary["cpu_s"] / staged * 1e6, 1),
        "clear_postgresql_cpu_us_per_record": round(summary["pg_cpu_s"] / staged * 1e6, 1),
        # The part of the workers' CPU that went to Python's cycle collector.
        "clear_gc_share": round(summary["gc_s"] / summary["cpu_s"], 3) if summary["cpu_s"] else 0,
        # Peak memory of a clearing worker (0 when it cleared in this process: --profile).
        "clear_worker_max_rss_mb": round(summary["rss_mb"]),
    }


async def run(
    url: str,
    taps: int,
    chunk: int,
    workers: list[int],
    profile: str,
    uploaders: int,
    ingesters: int,
) -> dict:
    days = [
        await one_day(url, taps, chunk, n, profile if n == 1 else "", uploaders, ingesters)
        for n in workers
    ]
    copy_rows_per_s = await copy_ceiling(url, min(taps, 1_000_000))
    for day in days:
        day["clear_ratio_to_copy"] = round(day["clear_records_per_s"] / copy_rows_per_s, 4)
        day["ingest_and_clear_ratio_to_copy"] = round(
            day["records_staged"] / day["seconds"] / copy_rows_per_s, 4
        )
    first = days[0]
    return {
        "taps": taps,
        **{k: v for k, v in first.items() if k != "workers"},
        "copy_rows_per_s": round(copy_rows_per_s, 1),
        "chunk_records": chunk,
        "uploaders": uploaders,
        "ingest_processes": ingesters,
        "workers": {str(day["workers"]): day for day in days},
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def workers_list(value: str) -> list[int]:
    try:
        counts = [int(part) for part in value.split(",")]
        split(max(counts))
        if min(counts) < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError("a list of worker counts, e.g. 1,2") from None
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=100_000)
    parser.add_argument(
        "--chunk",
        type=int,
        default=CHUNK_RECORDS_DEFAULT,
        help=f"records per transaction (1 .. {CHUNK_RECORDS_MAX})",
    )
    parser.add_argument("--url", default=os.environ.get("ONECARD_DATABASE_URL", ""))
    parser.add_argument(
        "--workers", type=workers_list, default=[1], help="worker counts to clear with: 1,2"
    )
    parser.add_argument("--profile", default="", help="write a cProfile of ingest and clear here")
    parser.add_argument(
        "--uploaders", type=int, default=2, help="connections uploading at once (1 .. 8)"
    )
    parser.add_argument(
        "--ingest-processes",
        type=int,
        default=1,
        help="processes ingesting side by side, as API workers do (1 .. 8), each with"
        " --uploaders connections",
    )
    args = parser.parse_args()
    if args.taps < 1 or not 1 <= args.chunk <= CHUNK_RECORDS_MAX or not 1 <= args.uploaders <= 8:
        parser.error(
            f"--taps must be at least 1, --chunk 1 .. {CHUNK_RECORDS_MAX} and --uploaders 1 .. 8"
        )
    if not 1 <= args.ingest_processes <= 8:
        parser.error("--ingest-processes must be 1 .. 8")
    url = args.url or DEFAULT_URL
    if not url.startswith("postgresql"):
        parser.error("the clearing benchmark runs on PostgreSQL (postgresql+asyncpg://...)")
    try:
        if args.url:
            given_database(db.normalize_url(url))
        else:
            fresh_database(url)
        figures = asyncio.run(
            run(
                url,
                args.taps,
                args.chunk,
                args.workers,
                args.profile,
                args.uploaders,
                args.ingest_processes,
            )
        )
    except ClearingError as error:
        raise SystemExit(f"error: {error}") from None
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
