"""The settlement instruction files (CSV, pain.001, claims) are written whole or not at all,
readable by the owner and its group only, with no temporary file left when the disk refuses."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from clearing.settlement.files import Debtor, PayoutLine, check_pain001
from clearing.settlement.service import Settlement, write_files

DAY = date(2026, 3, 1)
LINE = PayoutLine(
    "bus-1", "Bus One", "Bank of the City", "6222000000000000101", 3, 600, 0, 0, 50, 3, 597
)
SETTLEMENT = Settlement(DAY, datetime(2026, 3, 2, 1, tzinfo=UTC), "M1", (LINE,), (), False)
DEBTOR = Debtor("onecard", "6222000000000000001", "Bank of the City")

# A child whose files may not grow past 300 bytes: the pain.001 write fails half-way with EFBIG.
_DISK_FULL = """
import resource, signal, sys
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from tests.clearing.test_settlement_files import DEBTOR, SETTLEMENT
from clearing.settlement.service import write_files
resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))
try:
    write_files(SETTLEMENT, Path(sys.argv[1]), DEBTOR)
except OSError as error:
    print(error.errno)
"""


def test_instruction_files_are_complete_and_not_world_readable(tmp_path: Path) -> None:
    files = write_files(SETTLEMENT, tmp_path, DEBTOR)
    assert files.xml is not None and check_pain001(files.xml.read_bytes()) == []
    for path in (files.csv, files.xml, files.claims):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"settlement-{DAY}-claims.csv",
        f"settlement-{DAY}.csv",
        f"settlement-{DAY}.pain001.xml",
    ]


def test_a_full_disk_leaves_the_old_bank_file_and_no_temporary(tmp_path: Path) -> None:
    old = tmp_path / f"settlement-{DAY}.pain001.xml"
    old.write_text("the file the bank already has")
    child = subprocess.run(
        [sys.executable, "-c", _DISK_FULL, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert child.stdout.strip() == "27", child.stderr  # EFBIG: the write failed half-way
    assert old.read_text() == "the file the bank already has"
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
