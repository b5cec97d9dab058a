"""mypy on the pure cores of cardio and the fare engine (STYLE: "mypy on the pure cores")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PURE_CORES = (
    "cardio/apdu.py",
    "cardio/crypto.py",
    "cardio/errors.py",
    "cardio/records.py",
    "cardio/purse.py",
    "cardio/softcard.py",
    "terminals/fares",
    "terminals/capp.py",
)


def test_the_pure_cores_type_check(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path), *PURE_CORES],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
