"""`onecard terminal run` stops cleanly on SIGINT and SIGTERM while it waits for a card.

A real subprocess waits on a vpcd reader through pcscd (no card in it) with its uploader
running against a closed port; each signal must end it with exit code 0 after it stopped the
uploader and closed its journal (the journal's WAL is checkpointed and gone after the last
connection closed).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cardio.keystore import KeyStore, write_key_store
from clearing.cli import app
from tests.terminals.test_pcsc_terminal import READER, VPCD_PORT
from tests.terminals.test_pcsc_terminal import reader as reader  # the fixture

pytestmark = pytest.mark.pcsc

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60.0  # start-up of a Python process on a busy machine
STOP_TIMEOUT_S = 3.0  # generous: a terminal that ignores the signal never exits at all


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _provision(issuer: KeyStore, tmp_path: Path) -> Path:
    from typer.testing import CliRunner

    keys = tmp_path / "issuer.json"
    write_key_store(issuer, keys)
    out = tmp_path / "bus-9"
    provisioned = CliRunner().invoke(
        app,
        [
            "terminal",
            "provision",
            "--terminal-id",
            "000001000099",
            "--out",
            str(out),
            "--key-store",
            str(keys),
            "--clearing-url",
            f"http://127.0.0.1:{_closed_port()}",
            "--server-public-key",
            "11" * 32,
        ],
    )
    assert provisioned.exit_code == 0, provisioned.output
    return out


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_terminal_run_stops_cleanly_on_a_signal_while_waiting_for_a_card(
    reader, issuer, tmp_path, signum
):
    out = _provision(issuer, tmp_path)
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "onecard"),
            "terminal",
            "run",
            "bus",
            "--reader",
            READER,
            "--config",
            str(out / "terminal.toml"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200", "ONECARD_VPCD_PORT": str(VPCD_PORT)},
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip())
            if "present a card" in line:
                ready.set()

    reader_thread = threading.Thread(target=read, daemon=True)
    reader_thread.start()
    try:
        assert ready.wait(READY_TIMEOUT_S), "\n".join(lines)
        process.send_signal(signum)
        code = process.wait(timeout=STOP_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader_thread.join(5)
    output = "\n".join(lines)
    assert code == 0, output
    assert f"stopping on {signum.name}" in output
    assert "uploader stopped" in output
    assert lines[-1] == "journal closed", output
    assert (out / "journal.db").exists()
    assert not (out / "journal.db-wal").exists(), "the journal was not closed"
