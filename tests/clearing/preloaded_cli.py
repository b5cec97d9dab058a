"""The `onecard` console script, many times, without paying its start-up each time.

    python tests/clearing/preloaded_cli.py WORK_DIR PARALLEL < jobs.json > results.json

Imports what the console script imports (clearing.cli, and the full command line it imports to
run a command), once, in the environment it was started with; then for each job (a list of arguments) forks a process that runs exactly what the console
script runs, `sys.exit(main())` with sys.argv set, its standard input /dev/null and its standard
output and error files of its own. Up to PARALLEL at a time. Prints one JSON list: for each job
its exit status, standard output and standard error. Each command still runs in a process of its
own, with its own exit, its own output and nothing left by another command; only the interpreter
start and the imports are shared (the walk of every command otherwise spends most of its minutes
on them).
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

from clearing.cli import loaded, main  # as the console script does, before anything else

loaded()  # and the full command line, which the script imports when it runs a command


def _child(args: list[str], out: Path, err: Path) -> NoReturn:
    """In the forked process: become `onecard ARGS` (never returns)."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
    os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
    sys.stdin = open(os.devnull, encoding="utf-8")  # the process's own, for good
    sys.argv = ["onecard", *args]
    try:
        sys.exit(main())  # the console script's line
    except SystemExit as leaving:  # anything else unwinds to the interpreter, which prints it
        status = _exit_status(leaving.code)
    # The interpreter's exit, less tearing down every module (in a forked copy that would write
    # to every page it shares with its parent): the exit functions, the buffers flushed.
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)


def _exit_status(code: object) -> int:
    """What `sys.exit(code)` makes the interpreter exit with (it prints any other object)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _status(wait_status: int) -> int:
    if os.WIFSIGNALED(wait_status):
        return -os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def run_all(jobs: list[list[str]], work: Path, parallel: int) -> list[dict[str, object]]:
    running: dict[int, int] = {}  # pid -> job index
    statuses: dict[int, int] = {}
    pending = list(enumerate(jobs))
    gc.freeze()  # the collector leaves the imported objects alone: the children share them
    while pending or running:
        while pending and len(running) < parallel:
            index, args = pending.pop(0)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(args, work / f"{index}.out", work / f"{index}.err")
            running[pid] = index
        pid, wait_status = os.wait()
        statuses[running.pop(pid)] = _status(wait_status)
    return [
        {
            "returncode": statuses[index],
            "stdout": (work / f"{index}.out").read_text(encoding="utf-8", errors="replace"),
            "stderr": (work / f"{index}.err").read_text(encoding="utf-8", errors="replace"),
        }
        for index in range(len(jobs))
    ]


if __name__ == "__main__":
    work_dir, parallel = Path(sys.argv[1]), int(sys.argv[2])
    results = run_all(json.load(sys.stdin), work_dir, parallel)
    sys.stdout.write(json.dumps(results))
