"""The one way files that matter are written: whole or not at all, with the mode asked for, and
no temporary file left behind, even when the disk refuses the write half-way."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardio.atomicfile import MODE_PUBLIC, MODE_SECRET, write_bytes_atomic, write_text_atomic
from cardio.keystore import create_key_store, write_key_store

# Runs in a child whose file size limit is 4 KiB: a larger write fails half-way with EFBIG,
# as a full disk would (SIGXFSZ ignored so the write returns an error instead of killing).
_HALF_WAY = """
import resource, signal, sys
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
from cardio.atomicfile import write_bytes_atomic
try:
    write_bytes_atomic(Path(sys.argv[1]), b"n" * 100_000, mode=0o600)
except OSError as error:
    print(error.errno)
"""


def _leftovers(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != name)


def test_writes_the_content_with_the_mode_asked_for(tmp_path: Path) -> None:
    old_umask = os.umask(0o077)
    try:
        write_text_atomic(tmp_path / "lists.json", "{}", mode=MODE_PUBLIC)
    finally:
        os.umask(old_umask)
    write_bytes_atomic(tmp_path / "sub" / "keys.json", b"\x00secret", mode=MODE_SECRET)
    assert (tmp_path / "lists.json").read_text() == "{}"
    assert stat.S_IMODE((tmp_path / "lists.json").stat().st_mode) == 0o644
    assert (tmp_path / "sub" / "keys.json").read_bytes() == b"\x00secret"
    assert stat.S_IMODE((tmp_path / "sub" / "keys.json").stat().st_mode) == 0o600
    assert _leftovers(tmp_path / "sub", "keys.json") == []


def test_replacing_a_file_tightens_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    path.write_text("old")
    path.chmod(0o666)
    write_text_atomic(path, "new", mode=MODE_SECRET)
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@settings(max_examples=50)
@given(st.binary(max_size=70_000), st.binary(max_size=70_000))
def test_the_file_holds_exactly_the_last_write(first: bytes, second: bytes) -> None:
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"atomic-{os.getpid()}"
    path = folder / "f.bin"
    write_bytes_atomic(path, first, mode=MODE_SECRET)
    write_bytes_atomic(path, second, mode=MODE_SECRET)
    assert path.read_bytes() == second
    assert _leftovers(folder, "f.bin") == []


def test_a_write_that_fails_half_way_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("the old keys")
    child = subprocess.run(
        [sys.executable, "-c", _HALF_WAY, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert child.stdout.strip() == "27"  # EFBIG: the write really failed half-way
    assert path.read_text() == "the old keys"
    assert _leftovers(tmp_path, "keys.json") == []


def test_exclusive_creation_keeps_the_first_writers_content(tmp_path: Path) -> None:
    path = tmp_path / "list-signing-key.hex"
    write_text_atomic(path, "first\n", mode=MODE_SECRET, exclusive=True)
    with pytest.raises(FileExistsError):
        write_text_atomic(path, "second\n", mode=MODE_SECRET, exclusive=True)
    assert path.read_text() == "first\n"
    assert _leftovers(tmp_path, path.name) == []


def test_concurrent_writers_never_leave_a_torn_file(tmp_path: Path) -> None:
    path = tmp_path / "lists.json"
    bodies = [json.dumps({"writer": n, "pad": "x" * 50_000}) for n in range(4)]

    errors: list[BaseException] = []

    def write(body: str) -> None:
        try:
            for _ in range(20):
                write_text_atomic(path, body, mode=MODE_PUBLIC)
        except OSError as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(b,)) for b in bodies]
    for thread in threads:
        thread.start()
    for _ in range(200):
        if path.exists():
            assert path.read_text() in bodies
    for thread in threads:
        thread.join()
    assert errors == []
    assert path.read_text() in bodies
    assert _leftovers(tmp_path, "lists.json") == []


def test_a_key_store_is_written_whole_and_private(tmp_path: Path) -> None:
    store_path = tmp_path / "keys.json"
    store = create_key_store(store_path)
    write_key_store(store, store_path, overwrite=True)
    assert stat.S_IMODE(store_path.stat().st_mode) == 0o600
    assert _leftovers(tmp_path, "keys.json") == []
