"""bench/clearing.py on a database it is given: one never migrated, then the same one again
(it migrates it and works in a namespace of its own each time), and one with records of
someone else waiting to be cleared (a one-line refusal, no traceback)."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


async def _execute(url: str, *statements: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture
def empty_url(pg_url: str) -> str:
    """A database that exists and was never migrated."""
    parsed = make_url(pg_url)
    name = f"{parsed.database}_bench"
    admin = parsed.set(database="postgres").render_as_string(hide_password=False)
    asyncio.run(
        _execute(
            admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
        )
    )
    return parsed.set(database=name).render_as_string(hide_password=False)


def _bench(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "clearing.py"), "--taps", "200", "--url", url, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_bench_migrates_a_new_database_and_runs_again_on_a_used_one(empty_url: str) -> None:
    first = _bench(empty_url)
    assert first.returncode == 0, first.stderr
    again = _bench(empty_url, "--workers", "1,2", "--ingest-processes", "2")
    assert again.returncode == 0, again.stderr
    figures = json.loads(again.stdout.strip().splitlines()[-1])
    assert figures["taps"] == 200 and figures["records_staged"] >= 200
    assert set(figures["workers"]) == {"1", "2"}
    assert figures["ingest_processes"] == 2 and "ingest (2 processes): " in again.stderr
    for day in figures["workers"].values():  # every record staged once, by one process or two
        assert day["records_staged"] == figures["records_staged"]
        assert 0 <= day["clear_gc_share"] < 1  # the collector's part of the workers' CPU
        assert (
            day["clear_worker_max_rss_mb"] > 50
        )  # a worker process's own peak (interpreter, imports)
    assert "city 2:" in again.stderr and "city 3:" in again.stderr  # namespaces of their own
    assert "Traceback" not in first.stderr + again.stderr

    # Someone else's record waiting to be cleared: the benchmark would clear it too, so it refuses.
    asyncio.run(
        _execute(
            empty_url,
            "UPDATE tap_records SET state = 'received' WHERE id = (SELECT min(id) FROM tap_records)",
        )
    )
    refused = _bench(empty_url)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "error: 1 staged records are waiting to be cleared in this database and the benchmark"
        " would clear them too: clear them first, or give it another database (without --url"
        " it makes its own)"
    ]


def test_the_bench_refuses_a_database_holding_tables_of_something_else(empty_url: str) -> None:
    asyncio.run(_execute(empty_url, "CREATE TABLE orders (id int)"))
    refused = _bench(empty_url)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: database {make_url(empty_url).database!r} holds 1 table(s) that are not"
        " onecard's: give the benchmark an empty database or one onecard migrated"
    ]

    async def tables() -> list[str]:
        engine = create_async_engine(empty_url)
        try:
            async with engine.connect() as conn:
                query = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                return list((await conn.execute(text(query))).scalars())
        finally:
            await engine.dispose()

    assert asyncio.run(tables()) == ["orders"]  # nothing migrated into it


def test_postgresql_cpu_of_two_workers_counts_each_backend_once() -> None:
    """Two workers each see both workers' backends: the figure is what the backends used, not
    twice it (a backend opened during the run counts from zero, one closed early by its last
    reading)."""
    sys.path.insert(0, str(ROOT))
    from bench.clearing import cpu_between

    before_a = {10: 1.0, 11: 2.0, 20: 5.0}
    before_b = {10: 1.5, 11: 2.0, 20: 5.0}
    after_a = {10: 4.0, 11: 2.5, 20: 7.0, 30: 1.0}  # a closes 10, 11 after this
    after_b = {20: 9.0, 30: 3.0}
    used = cpu_between([before_a, before_b], [after_a, after_b])
    assert used == pytest.approx((4.0 - 1.0) + (2.5 - 2.0) + (9.0 - 5.0) + 3.0)


def test_the_collector_time_counts_the_collections_of_its_block_only() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.clearing import CollectorTime

    with CollectorTime() as inside:
        for _ in range(3):
            gc.collect()
    seconds = inside.seconds
    gc.collect()
    assert seconds > 0 and inside.seconds == seconds
