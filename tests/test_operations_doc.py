"""docs/operations.md works as written: its ```bash blocks, in order, in one bash, in an empty
directory, against a fresh PostgreSQL database, with the clearing service started in the
background as the page says.

Two substitutions only, so runs never collide with a real installation or another test run:
the database name `onecard_city` becomes a fresh one next to the test database, and port 8000
becomes a free port.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "operations.md"
DOC_TIMEOUT_S = 240.0  # a hang fails; it runs in ~30 s
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)


def bash_blocks(text: str) -> list[str]:
    return BASH_BLOCK.findall(text)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _psql(database_url: str, statement: str) -> None:
    url = make_url(database_url)
    subprocess.run(
        ["psql", "-q", "-h", url.host or "127.0.0.1", "-U", url.username or "postgres"]
        + ["-d", "postgres", "-c", statement],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def fresh_database(pg_url: str):
    url = make_url(pg_url)
    if (url.host, url.username, url.port or 5432) != ("127.0.0.1", "postgres", 5432):
        pytest.skip("the page's commands name postgres@127.0.0.1:5432")
    name = f"{url.database}_opsdoc"
    _psql(pg_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    yield name
    _psql(pg_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_the_page_of_bash_blocks_reads_in_order() -> None:
    blocks = bash_blocks(DOC.read_text(encoding="utf-8"))
    joined = "\n".join(blocks)
    assert len(blocks) >= 8
    for command in (
        "onecard db upgrade",
        "onecard card keys",
        "onecard registry participant add",
        "onecard serve",
        "onecard terminal provision",
        "onecard registry terminal add",
        "onecard card issue --register",
        "onecard terminal simulate",
        "onecard clear",
        "onecard quarantine list",
        "onecard settle",
        "onecard statement",
    ):
        assert command in joined, command
    assert "--server-public-key" not in joined  # fetched from the running service


def test_operations_doc_runs_from_an_empty_database_to_a_settled_day(
    fresh_database: str, tmp_path: Path
) -> None:
    port = str(_free_port())
    script = "\n".join(bash_blocks(DOC.read_text(encoding="utf-8")))
    script = script.replace("onecard_city", fresh_database)
    script = script.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    script = script.replace("--port 8000", f"--port {port}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONECARD_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "120"
    process = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the page's background server is in this group: stopped below
    )
    try:
        output, _ = process.communicate(timeout=DOC_TIMEOUT_S)
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        process.wait()
    assert process.returncode == 0, output[-6000:]
    plain = output.replace("│", " ")
    simulated = re.search(
        r"^\s*all\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d,.]+)\s+(\d+)\s+(\d+)", plain, re.M
    )
    assert simulated, output[-6000:]
    taps, paid, _refused, _fares, uploaded, pending = simulated.groups()
    assert int(taps) == 30 and int(paid) > 0
    assert int(uploaded) == int(paid) and int(pending) == 0
    assert "list-signing key SHA256:" in output
    assert "fetched from http://127.0.0.1" in output and "pinned" in output
    assert "books opened" in output
    settlement = tmp_path / "var" / "settlement"
    assert any(settlement.rglob("*.csv")), output[-3000:]
    assert any(settlement.rglob("*.xml")), output[-3000:]
    instructions = [p for p in settlement.rglob("settlement-*.csv") if "claims" not in p.name]
    assert instructions and "bus-north" in instructions[0].read_text(), output[-3000:]
