"""bench/reconcile.py fills a valid day after earlier days of their own (--history-days) and the
run finds no break in it; a history it cannot fill is a usage error in one line."""

from __future__ import annotations

import asyncio
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


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "bench/reconcile.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _drop(admin_url: str, name: str) -> None:
    async def drop() -> None:
        admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            await admin.dispose()

    asyncio.run(drop())


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
        _drop(parsed.set(database="postgres").render_as_string(hide_password=False), name)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["breaks_found"] == 0
    assert result["history_days"] == days
    # Staged and cleared taps of every day filled; the day's transfers and each card's first load.
    assert result["scan_rows"] == 2 * taps * (days + 1) + taps + cards
    # The day's checks saw the day only: every tap of it, none of the earlier days'.
    assert result["checks"]["cards"][1] == taps
    assert result["checks"]["terminals"][0] == result["checks"]["terminals"][1]


def test_a_history_out_of_range_is_a_usage_error() -> None:
    run = _run("--history-days", "61")
    assert run.returncode == 2
    assert "--history-days must be 0 .. 60" in run.stderr
    assert "Traceback" not in run.stderr
