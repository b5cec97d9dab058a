"""bench/reconcile.py fills a valid day after earlier days of their own (--history-days) and the
run finds no break in it; a mistaken command is one line, and it never drops a database that is
not named as its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import drop_database

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "bench/reconcile.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_day_after_two_earlier_days_reconciles_with_no_break(pg_url: str) -> None:
    parsed = make_url(pg_url)
    name = f"{parsed.database}_benchrecon"
    url = parsed.set(database=name).render_as_string(hide_password=False)
    taps, cards, days = 3_000, 300, 2
    try:
        run = _run(
            "--url", url, "--taps", str(taps), "--cards", str(cards), "--terminals", "30",
            "--history-days", str(days),
        )  # fmt: skip
    finally:
        drop_database(url)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["breaks_found"] == 0
    assert result["history_days"] == days
    # Staged and cleared taps of every day filled, and each day's transfers: its cards' first
    # loads and a transfer per tap.
    assert result["scan_rows"] == (2 * taps + taps + cards) * (days + 1)
    # The ledger check: every account (escrow, 10 operators, every day's cards), the ledger, the
    # float, and the day's entries only (two a tap; the loads came the second before the day).
    accounts = 1 + 10 + cards * (days + 1)
    assert result["checks"]["ledger"][:2] == [accounts + 2 + 2 * taps] * 2
    # The day's checks saw the day only: every tap of it, none of the earlier days'.
    assert result["checks"]["cards"][1] == taps
    assert result["checks"]["terminals"][0] == result["checks"]["terminals"][1]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--history-days", "61"], "--history-days must be 0 .. 60"),
        (["--taps", "0"], "--taps and --cards must be at least 1"),
        (["--url", "sqlite+aiosqlite:///x.db"], "runs on PostgreSQL"),
        # It drops what it is given: never a database not named as its own.
        (["--url", "postgresql+asyncpg://postgres@127.0.0.1:5432/onecard"], "'onecard' is not"),
        (["--url", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"], "'postgres' is not"),
    ],
)
def test_a_mistaken_command_is_a_usage_error_in_one_line(args: list[str], says: str) -> None:
    run = _run(*args)
    assert run.returncode == 2
    assert says in run.stderr.splitlines()[-1]
    assert "Traceback" not in run.stderr


def test_a_server_it_cannot_reach_is_named_in_one_line() -> None:
    run = _run("--url", "postgresql+asyncpg://postgres@127.0.0.1:1/onecard_bench_x")
    assert run.returncode == 1
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach"), run.stderr
