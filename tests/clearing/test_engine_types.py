"""mypy --strict on the pure cores of clearing (STYLE: "mypy on the pure cores"): the engine's
decision and reasons, fee math, business days, settlement files, insurance rules, the chart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PURE_CORES = (
    "clearing/engine/decide.py",
    "clearing/engine/reasons.py",
    "clearing/engine/facts.py",
    "clearing/engine/posting.py",
    "clearing/engine/rows.py",
    "clearing/engine/runs.py",
    "clearing/records.py",
    "tests/clearing/test_engine_uow.py",  # its fakes satisfy the engine's unit of work
    "clearing/settlement/fees.py",
    "clearing/calendar.py",
    "clearing/settlement/files.py",
    "clearing/clinic/rules.py",
    "clearing/books/chart.py",
    "clearing/books/codes.py",
)


def test_the_clearing_pure_cores_type_check_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--cache-dir",
            str(tmp_path),
            *PURE_CORES,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
