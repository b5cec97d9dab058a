"""bench/ledger.py given a database it cannot use says so in one line (exit 1), no traceback; a
mistaken option is a usage error (exit 2); its COPY ceilings are measured on empty tables and on
tables holding as many rows as ledger_transfers does, and leave nothing of theirs behind."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _on_server, drop_database

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


def _run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ONECARD_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "bench/ledger.py", "--scale", "0.01", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("database", "port", "says"),
    [("onecard_no_such_db_x", None, "no database"), ("postgres", 1, "cannot reach")],
)
def test_a_database_it_cannot_use_is_named_in_one_line(pg_url, database, port, says):
    parsed = make_url(pg_url).set(database=database)
    if port is not None:
        parsed = parsed.set(port=port)
    run = _run(parsed.render_as_string(hide_password=False))
    assert run.returncode == 1
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], run.stderr
    assert "Traceback" not in run.stderr + run.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--at-size-max", "-1"], "--at-size-max must be 0 or more"),
        (["--scale", "0"], "--scale must be more than 0"),
        (["--scale", "nan"], "--scale must be more than 0"),
    ],
)
def test_a_mistaken_option_is_a_usage_error(pg_url, args, says):
    run = _run(pg_url, *args)
    assert run.returncode == 2
    assert says in run.stderr.splitlines()[-1]
    assert "Traceback" not in run.stderr


def test_the_ceilings_at_the_ledgers_size_hold_as_many_rows_as_it_does(pg_url):
    parsed = make_url(pg_url)
    url = parsed.set(database=f"{parsed.database}_benchledger").render_as_string(
        hide_password=False
    )
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def leftovers() -> tuple[int, int]:
        conn = await asyncpg.connect(dsn)
        try:
            transfers = await conn.fetchval("SELECT count(*) FROM ledger_transfers")
            tables = await conn.fetchval(
                "SELECT count(*) FROM pg_class WHERE relname LIKE 'bench_copy_%'"
                " OR relname LIKE 'pgl_%'"
            )
            return transfers, tables
        finally:
            await conn.close()

    drop_database(url)
    _on_server(url, f'CREATE DATABASE "{make_url(url).database}"')
    try:
        capped = _run(url, "--skip-nogroup", "--at-size-max", "1500")
        uncapped = _run(url, "--skip-nogroup")
        transfers, tables = asyncio.run(leftovers())
    finally:
        drop_database(url)
    assert capped.returncode == 0, capped.stderr
    assert uncapped.returncode == 0, uncapped.stderr
    first = json.loads(capped.stdout.splitlines()[-1])
    second = json.loads(uncapped.stdout.splitlines()[-1])
    # The first run's ceilings held at most 1,500 rows; the second's every row of the ledger,
    # which by then held both runs' transfers (the ceilings write none of theirs into it).
    assert first["at_size_rows"] == 1500 < first["ledger_rows"]
    assert second["at_size_rows"] == second["ledger_rows"] == transfers > first["ledger_rows"]
    for figures in (first, second):
        for name in ("copy", "copy_indexed", "copy_at_size", "copy_indexed_at_size"):
            assert figures[f"{name}_rows_per_s"] > 0
        assert figures["batch_ratio_to_copy_at_size"] == round(
            figures["batch_8000_tps"] / figures["copy_at_size_rows_per_s"], 3
        )
    assert "against tables holding" in uncapped.stdout
    assert tables == 0  # the ceilings' and the reference's tables are dropped
