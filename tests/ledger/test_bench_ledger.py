"""bench/ledger.py given a database it cannot use says so in one line (exit 1), no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


def _run(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ONECARD_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "bench/ledger.py", "--scale", "0.01"],
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
