"""Benchmark of the clearing engine on PostgreSQL: `python bench/clearing.py --taps 1000000`.

Builds a city (operators, terminals, cards with money on them), makes `--taps` genuine tap
records (each with the TAC its card computes, 1 % of them uploaded twice), then times:
- ingest: the ingestion service storing the signed-batch bodies and staging every record;
- clear: the engine verifying every TAC, deduplicating and posting through the ledger;
and, in the same run, the COPY ceiling: rows/s PostgreSQL accepts into a table shaped like the
ledger's transfers. Ends with one JSON line (taps, seconds, taps_per_s, copy_rows_per_s, ...).

`--url` (or ONECARD_DATABASE_URL) names the database; by default a fresh `onecard_bench`
database is made on the local PostgreSQL (it is dropped and re-created).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from cardio.keystore import create_key_store
from clearing import books, db
from clearing.books import LEDGER_CNY, TransferCode
from clearing.engine.service import ClearingEngine, EngineConfig, load_verifier
from clearing.engine.synthetic import SyntheticCard, TapSigner, purchase
from clearing.ingest import service as ingest_service
from clearing.ingest.schemas import BatchUpload
from clearing.registry.models import Card, Participant, Terminal
from ledger import Transfer, transfer_id
from ledger.types import BATCH_MAX
from ledger.writer import Ledger

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/onecard_bench"
OPERATORS = 10
TERMINALS = 1000
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

    asyncio.run(recreate())
    db.upgrade(url)


async def build_city(ledger: Ledger, cards: int, key_path: Path) -> tuple[TapSigner, list]:
    store = create_key_store(key_path)
    now = datetime.now(UTC)
    async with ledger.transaction() as conn:
        await books.open_books(ledger, conn=conn)
        await conn.execute(
            insert(Participant.__table__),
            [
                {
                    "code": f"bus-{n}",
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
        ids = {r[0]: r[1] for r in await conn.execute(text("SELECT code, id FROM participants"))}
        await conn.execute(
            insert(Terminal.__table__),
            [
                {
                    "terminal_id": f"{0x100000 + n:012X}",
                    "participant_id": ids[f"bus-{n % OPERATORS}"],
                    "kind": "bus",
                    "line": f"L{n % 200}",
                    "public_key": "11" * 32,
                    "status": "active",
                    "seq_high": None,
                    "created_at": now,
                }
                for n in range(TERMINALS)
            ],
        )
    card_nos = [f"31{n:014d}" for n in range(cards)]
    for start in range(0, cards, BATCH_MAX):
        part = card_nos[start : start + BATCH_MAX]
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
                raise SystemExit("could not load the bench cards")
    return TapSigner(store), [SyntheticCard(no, TAPS_PER_CARD * FARE_FEN * 2) for no in card_nos]


def make_taps(signer: TapSigner, cards: list[SyntheticCard], taps: int) -> dict[str, list[dict]]:
    """Per terminal, its journal: taps spread over the day, each with its card's TAC."""
    rng = random.Random(7)
    journals: dict[str, list[dict]] = {}
    seqs: dict[str, int] = {}
    start = datetime.now(UTC) - timedelta(hours=20)
    for n in range(taps):
        card = cards[n % len(cards)]
        terminal = f"{0x100000 + rng.randrange(TERMINALS):012X}"
        seqs[terminal] = seqs.get(terminal, 0) + 1
        record = purchase(
            signer,
            card,
            terminal_id=terminal,
            terminal_seq=seqs[terminal],
            amount_fen=FARE_FEN,
            at=start + timedelta(seconds=n * 60_000 // max(taps, 1)),
            route_id=f"L{int(terminal, 16) % 200}",
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


async def ingest(ledger: Ledger, bodies: list[tuple[str, bytes]]) -> int:
    """Store every upload body through the ingestion service (parsed and validated there)."""
    stored = 0
    group: list[tuple[str, bytes]] = []
    for item in bodies + [("", b"")]:
        if item[0]:
            group.append(item)
        if group and (not item[0] or sum(1 for _ in group) >= 20):
            async with ledger.transaction() as conn:
                session = AsyncSession(bind=conn)
                for terminal, body in group:
                    upload = BatchUpload.model_validate_json(body)
                    await ingest_service.store_batch(
                        session, terminal_id=terminal, body=body, upload=upload
                    )
                    stored += len(upload.records)
                await session.flush()
                await session.close()
            group = []
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


async def run(url: str, taps: int, chunk: int) -> dict[str, object]:
    cards = max(1, taps // TAPS_PER_CARD)
    with tempfile.TemporaryDirectory() as tmp:
        key_path = Path(tmp) / "keys.json"
        async with await Ledger.open(url) as ledger:
            t0 = time.perf_counter()
            signer, synthetic = await build_city(ledger, cards, key_path)
            setup_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            journals = make_taps(signer, synthetic, taps)
            bodies = make_bodies(journals)
            del journals
            generate_s = time.perf_counter() - t0
            print(
                f"city: {cards} cards ({setup_s:.1f} s); taps and upload bodies made in"
                f" {generate_s:.1f} s",
                file=sys.stderr,
            )
            t0 = time.perf_counter()
            staged = await ingest(ledger, bodies)
            del bodies
            ingest_s = time.perf_counter() - t0
            print(f"ingest: {staged} records in {ingest_s:.1f} s", file=sys.stderr)
            engine = ClearingEngine(
                ledger, load_verifier(key_path), EngineConfig(chunk_records=chunk)
            )
            t0 = time.perf_counter()
            summary = await engine.clear_pending(trigger="bench")
            clear_s = time.perf_counter() - t0
            print(
                f"clear: {summary.records_seen} records in {clear_s:.1f} s "
                f"(posted {summary.posted}, duplicates {summary.duplicates}, "
                f"quarantined {summary.quarantined})",
                file=sys.stderr,
            )
    if summary.posted != taps or summary.quarantined:
        raise SystemExit(f"wrong outcome: {summary}")
    copy_rows_per_s = await copy_ceiling(url, min(taps, 1_000_000))
    seconds = ingest_s + clear_s
    return {
        "taps": taps,
        "records_staged": staged,
        "seconds": round(seconds, 2),
        "taps_per_s": round(taps / seconds, 1),
        "ingest_seconds": round(ingest_s, 2),
        "clear_seconds": round(clear_s, 2),
        "clear_records_per_s": round(staged / clear_s, 1),
        "copy_rows_per_s": round(copy_rows_per_s, 1),
        "clear_ratio_to_copy": round(staged / clear_s / copy_rows_per_s, 4),
        "chunk_records": chunk,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=8000, help="records per transaction")
    parser.add_argument("--url", default=os.environ.get("ONECARD_DATABASE_URL", ""))
    args = parser.parse_args()
    url = args.url or DEFAULT_URL
    if not url.startswith("postgresql"):
        raise SystemExit("the clearing benchmark runs on PostgreSQL (postgresql+asyncpg://...)")
    if not args.url:
        fresh_database(url)
    figures = asyncio.run(run(url, args.taps, args.chunk))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
