"""Durable, all-or-nothing file writes: every file that matters (key stores, card files, SAM keys
and serials, lists, credentials, bank files) is written through here.

A temporary file in the same folder is written, fsync'd, renamed over the target, and the folder
is fsync'd, so after a crash the path holds either the old content or the new, never a torn mix,
and a rename that returned survives a power cut. Never leaves its temporary file behind.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

MODE_SECRET = 0o600  # keys, card files, credentials: the owner only
MODE_GROUP = 0o640  # bank files: the owner and its group (the job that sends them to the bank)
MODE_PUBLIC = 0o644  # lists, configuration: readable by the operator's tools


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temporary(path: Path, data: bytes, mode: int) -> Path:
    # A name of its own (created exclusively, 0600 until fchmod): two writers of one path, even
    # threads of one process, never share a temporary file.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temporary = Path(name)
    try:
        os.fchmod(fd, mode)  # the mode asked for, whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    os.close(fd)
    return temporary


def write_bytes_atomic(
    path: str | os.PathLike[str], data: bytes, *, mode: int, exclusive: bool = False
) -> None:
    """Replace `path` with `data` (file mode `mode`) atomically and durably.

    `exclusive`: create only if `path` does not exist (FileExistsError otherwise), so concurrent
    writers agree on the first one's content; the check and the creation are one step (link).
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where a folder of the path belongs: say that, not "exists"
        raise NotADirectoryError(
            errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target.parent)
        ) from None
    try:
        temporary = _write_temporary(target, data, mode)
    except OSError as error:
        raise _naming(error, target) from error
    try:
        if exclusive:
            os.link(temporary, target)
        else:
            os.replace(temporary, target)
    except OSError as error:
        raise _naming(error, target) from error
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(target.parent)


def _naming(error: OSError, target: Path) -> OSError:
    """The same error (same class, same errno) naming the file the caller asked for: the user
    never heard of our temporary file."""
    return type(error)(error.errno, error.strerror, str(target))


def write_text_atomic(
    path: str | os.PathLike[str],
    text: str,
    *,
    mode: int,
    exclusive: bool = False,
    encoding: str = "utf-8",
) -> None:
    """`write_bytes_atomic` of `text` encoded (UTF-8 unless told)."""
    write_bytes_atomic(path, text.encode(encoding), mode=mode, exclusive=exclusive)
