"""`onecard --help` starts fast: it lists the full command line's commands without importing the
back office (SQLAlchemy, FastAPI, Celery, Stripe, the command modules), and shows exactly what the
full app shows; every command still runs the full app's code."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

from typer.main import get_command
from typer.testing import CliRunner

from clearing.cli import FULL_COMMANDS, loaded, starting

BACK_OFFICE = (
    "sqlalchemy",
    "fastapi",
    "celery",
    "stripe",
    "jinja2",
    "reconciliation",
    "clearing.cli.server",
)


def test_the_listing_is_the_full_apps_own() -> None:
    full = get_command(loaded()[0])
    listed = {}
    for name in full.list_commands(None):  # type: ignore[attr-defined,arg-type]
        command = full.get_command(None, name)  # type: ignore[attr-defined,arg-type]
        listed[name] = inspect.cleandoc(command.short_help or command.help or "").split("\n\n")[0]
    assert listed == FULL_COMMANDS
    assert list(listed) == list(FULL_COMMANDS)  # in the same order
    runner = CliRunner()
    for args in (["--help"], []):
        fast = runner.invoke(starting, args, terminal_width=100, env={"COLUMNS": "100"})
        slow = runner.invoke(loaded()[0], args, terminal_width=100, env={"COLUMNS": "100"})
        assert (fast.exit_code, fast.output) == (slow.exit_code, slow.output)
    assert "breaks      Reconciliation breaks: list, show and work them." in fast.output


def test_help_imports_none_of_the_back_office() -> None:
    script = (
        "import json, sys\n"
        "sys.argv = ['onecard', '--help']\n"
        "from clearing.cli import main\n"
        "try:\n    main()\nexcept SystemExit as leaving:\n    code = leaving.code\n"
        f"names = {BACK_OFFICE!r}\n"
        "found = sorted(m for m in sys.modules if m.startswith(names))\n"
        "print(json.dumps([code, found]), file=sys.stderr)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    code, imported = json.loads(ran.stderr.strip().splitlines()[-1])
    assert code in (0, None) and imported == [], ran.stderr
    assert "approvals   Write-offs, refunds and early settlements" in ran.stdout


def test_commands_run_the_full_apps_code_with_the_same_messages() -> None:
    runner = CliRunner()
    for args, code, said in (
        (["breaks", "show"], 2, "error: missing argument 'break_id'; try: onecard breaks show"),
        (["setle"], 2, "error: no such command 'setle'; did you mean 'settle'"),
        (["no-such-command"], 2, "error: no such command 'no-such-command'; try: onecard --help"),
        (["--bogus"], 2, "error: no such option: --bogus; try: onecard --help"),
        (["breaks", "--help"], 0, "write-off  Ask for a break to be written off"),
        (["approvals", "list", "--state", "maybe"], 2, "'maybe' is not one of 'pending'"),
    ):
        fast = runner.invoke(starting, args, terminal_width=120, env={"COLUMNS": "120"})
        slow = runner.invoke(loaded()[0], args, terminal_width=120, env={"COLUMNS": "120"})
        assert (fast.exit_code, fast.output) == (slow.exit_code, slow.output), args
        assert fast.exit_code == code and said in fast.output, (args, fast.output)
        assert "Traceback" not in fast.output
