"""`pip install "onecard[terminal]"`: a bus validator without the back office.

Installs the project with only the `terminal` extra into a fresh venv (pip reaches the package
index or its cache) and runs the commands a terminal needs there: a key store, a card, a fare
quote, a provisioned bus and taps on the in-process card. FastAPI, SQLAlchemy and Celery are not
installed, and the back office's commands say which install they need instead of a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from terminals.fares.feed import sample_feed_dir

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ledger", "cardio", "terminals", "clearing", "reconciliation", "insight")
INSTALL_TIMEOUT_S = 900
COMMAND_TIMEOUT_S = 120
CARD_NO = "3100000000000777"


def _source_copy(into: Path) -> Path:
    """The project's files as a wheel would see them (no .venv, no build debris in the tree)."""
    source = into / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return source


@pytest.fixture(scope="module")
def terminal_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("terminal-install")
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            f"{_source_copy(where)}[terminal]",
        ],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


def _onecard(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ONECARD_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(COLUMNS="200", ONECARD_KEY_STORE=str(cwd / "keys.json"))
    return subprocess.run(
        [str(venv / "bin" / "onecard"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def test_the_terminal_install_has_no_server_stack(terminal_venv: Path):
    for module in ("fastapi", "sqlalchemy", "celery"):
        probe = subprocess.run(
            [str(terminal_venv / "bin" / "python"), "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr, module


def test_a_card_is_issued_priced_and_tapped_on_a_bus_without_the_back_office(
    terminal_venv: Path, tmp_path: Path
):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return _onecard(terminal_venv, tmp_path, *args)

    assert run("card", "keys").returncode == 0
    issued = run(
        "card", "issue", "--out", "card.json", "--number", CARD_NO, "--balance", "1000",
        "--valid-from", "2026-01-01",
    )  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    assert f"issued card {CARD_NO}" in issued.stdout

    (tmp_path / "taps.csv").write_text(
        "card,card_type,time,route_id,stop_id\nC1,adult,2026-11-30T07:00:00+08:00,1,old_town\n"
    )
    priced = run("fares", "price", str(sample_feed_dir()), "--taps", "taps.csv")
    assert priced.returncode == 0, priced.stderr
    assert priced.stdout.splitlines()[1].split(",")[6] == "200"  # fare_fen of an adult ride

    provisioned = run("terminal", "provision", "--terminal-id", "000001000077", "--out", "bus")
    assert provisioned.returncode == 0, provisioned.stderr
    tapped = run(
        "terminal", "simulate", "--config", "bus/terminal.toml", "--cards", "card.json",
        "--taps", "3", "--day", "2026-11-30",
    )  # fmt: skip
    # No clearing URL: the taps stay in the journal for later upload, and the command says so.
    assert "3 record(s) not uploaded" in tapped.stderr, tapped.stdout + tapped.stderr
    read = run("card", "read", "--card", "card.json", "--json")
    assert read.returncode == 0, read.stderr
    card = json.loads(read.stdout)
    assert card["balance_fen"] < 1000
    assert len([t for t in card["transactions"] if t["type"] != "load"]) == 3
    journal = run("terminal", "journal", "--config", "bus/terminal.toml")
    assert "records 3" in journal.stdout


def test_a_back_office_command_names_the_install_it_needs(terminal_venv: Path, tmp_path: Path):
    refused = _onecard(terminal_venv, tmp_path, "ledger", "check")
    assert refused.returncode == 1
    assert 'pip install "onecard[server]"' in " ".join(refused.stderr.split())
    assert "Traceback" not in refused.stderr
    broken = _onecard(terminal_venv, tmp_path, "card", "read", "--card", "missing.json")
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
