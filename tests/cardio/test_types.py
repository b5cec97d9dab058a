"""mypy on the pure cores of cardio and the terminals (STYLE: "mypy on the pure cores"):
`--strict` on the card's codecs, crypto and purse, the fare engine and the CAPP exchange; plain
mypy on the modules still being split (the software card, the fare feed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STRICT_CORES = (
    "cardio/apdu.py",
    "cardio/crypto.py",
    "cardio/errors.py",
    "cardio/invariant.py",
    "cardio/money.py",
    "cardio/records.py",
    "cardio/purse.py",
    "terminals/fares/engine.py",
    "terminals/capp.py",
)
TYPED = ("cardio/softcard.py", "terminals/fares")


def _mypy(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_pure_cores_type_check_strictly(tmp_path: Path) -> None:
    result = _mypy(tmp_path, "--strict", "--follow-imports=silent", *STRICT_CORES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_card_and_the_feed_type_check(tmp_path: Path) -> None:
    result = _mypy(tmp_path, *TYPED)
    assert result.returncode == 0, result.stdout + result.stderr
