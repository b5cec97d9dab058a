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
from terminals.cli import app
from tests.terminals.test_pcsc_terminal import READER
from tests.terminals.test_pcsc_terminal import attach as attach  # the fixtures
from tests.terminals.test_pcsc_terminal import reader as reader

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


class RunningTerminal:
    """`onecard terminal run KIND` in a subprocess; its output collected as it comes (a prompt
    has no newline); its stdin stays open and silent, like a clerk who has not typed yet."""

    def __init__(self, config: Path, kind: str = "bus") -> None:
        self.text = ""
        self._seen = threading.Condition()
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "onecard"), "terminal", "run", kind]
            + ["--reader", READER, "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "COLUMNS": "200"},
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while chunk := os.read(fd, 4096):
            with self._seen:
                self.text += chunk.decode("utf-8", "replace")
                self._seen.notify_all()

    def wait_for(self, text: str) -> None:
        with self._seen:
            found = self._seen.wait_for(lambda: text in self.text, READY_TIMEOUT_S)
        assert found, self.output

    @property
    def output(self) -> str:
        return self.text

    @property
    def lines(self) -> list[str]:
        return self.text.rstrip().splitlines()

    def stop_with(self, signum: signal.Signals) -> int:
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            assert self.process.stdin is not None
            self.process.stdin.close()
        self._thread.join(5)
        return code


def assert_clean_stop(running: RunningTerminal, code: int, signum: signal.Signals, out: Path):
    assert code == 0, running.output
    assert f"stopping on {signum.name}" in running.output
    assert "uploader stopped" in running.output
    assert running.lines[-1] == "journal closed", running.output
    assert (out / "journal.db").exists()
    assert not (out / "journal.db-wal").exists(), "the journal was not closed"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_terminal_run_stops_cleanly_on_a_signal_while_waiting_for_a_card(
    reader, issuer, tmp_path, signum
):
    out = _provision(issuer, tmp_path)
    running = RunningTerminal(out / "terminal.toml")
    running.wait_for("present a card")
    assert_clean_stop(running, running.stop_with(signum), signum, out)


def test_terminal_run_stops_cleanly_while_a_served_card_is_still_on_the_reader(
    attach, issuer, tmp_path
):
    """After a tap the loop waits for the card to leave: a signal there stops it too, and the
    tap it made is in the journal, complete."""
    from cardio.softcard import SoftCard
    from terminals.journal import Journal, RecordStatus

    out = _provision(issuer, tmp_path)
    card = SoftCard.issue(issuer, "3100000000000599", balance_fen=1000)
    attach(card)
    running = RunningTerminal(out / "terminal.toml")
    running.wait_for("ok: OK 2.00")
    assert_clean_stop(running, running.stop_with(signal.SIGTERM), signal.SIGTERM, out)
    assert card.balance_fen == 800
    journal = Journal(out / "journal.db", "000001000099")
    assert [r.status for r in journal.records()] == [RecordStatus.COMPLETE]
    journal.close()


def test_clinic_run_stops_cleanly_on_a_signal_while_the_clerk_is_asked_for_the_visit(
    attach, issuer, tmp_path
):
    """The prompt waits on a person, not on a reader slice: the signal ends it, nothing is
    charged, and the shutdown is the same."""
    from cardio.softcard import SoftCard

    out = _provision(issuer, tmp_path)
    card = SoftCard.issue(issuer, "3100000000000598", balance_fen=1000)
    attach(card)
    running = RunningTerminal(out / "terminal.toml", kind="clinic")
    running.wait_for("visit (VISIT_ID:BILL_FEN)")
    assert_clean_stop(running, running.stop_with(signal.SIGINT), signal.SIGINT, out)
    assert card.balance_fen == 1000
