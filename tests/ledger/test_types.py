"""mypy --strict on the ledger's pure cores (STYLE: "mypy on the pure cores"), and the one typed
port: `ledger.writer.Ledger` is a `ledger.port.LedgerPort`, checked by mypy, not only at runtime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ledger.port import LedgerPort

REPO = Path(__file__).resolve().parents[2]
STRICT_CORES = (
    "ledger/errors.py",
    "ledger/ids.py",
    "ledger/port.py",
    "ledger/rules.py",
    "ledger/types.py",
)
CONFORMS = """\
from ledger.port import LedgerPort
from ledger.writer import Ledger


def port_of(ledger: Ledger) -> LedgerPort:
    return ledger
"""


def test_the_ledger_pure_cores_type_check_strictly(tmp_path: Path) -> None:
    conforms = tmp_path / "conforms.py"
    conforms.write_text(CONFORMS, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--cache-dir",
            str(tmp_path / "cache"),
            *STRICT_CORES,
            str(conforms),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_fake_missing_a_method_is_not_a_ledger_port() -> None:
    class TransfersOnly:
        async def create_transfers(self, batch: object, *, conn: object = None) -> list[object]:
            return []

    assert not isinstance(TransfersOnly(), LedgerPort)
