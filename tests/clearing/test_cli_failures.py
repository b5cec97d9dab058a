"""No traceback reaches a user: every command of `onecard --help`, given bad input or a database
that is missing, refused, unmigrated or named by an unsupported URL, says what is wrong in one
line and exits 2 (used wrongly) or 1 (failed). Part of it runs the real console script."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import typer.main
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from clearing import db
from clearing.cli import app
from clearing.cli.failures import explain
from clearing.settings import get_settings
from tests.conftest import PCSCD_GROUP

ONECARD = str(Path(sys.executable).parent / "onecard")
PRELOADED = Path(__file__).with_name("preloaded_cli.py")
COMMAND_TIMEOUT_S = 120  # a command that waits this long for something is itself a failure
# They read the PC/SC readers (whatever card another test left in one): no database, no
# required input, so nothing wrong to say.
NEEDS_NOTHING = {("card", "readers"), ("card", "read")}
# So the walks that run them keep to the worker of the PC/SC tests (tests/conftest.py): `card
# read` would otherwise talk to the card a test on another worker has in a vpcd reader.
TOUCHES_PCSCD = pytest.mark.xdist_group(PCSCD_GROUP)
# The remedy for a database never migrated is not a failure: `db upgrade` (tested in
# test_cli.py); `serve` migrates too unless told not to, and then must refuse.
# The biller simulator stands in for another company's server: it has no database of ours and
# serves until stopped (tests/clearing/test_billing*.py run it as a process).
OUTSIDE_PARTY = {("bills", "biller-service")}
BEFORE_UPGRADE_SKIP = {("db", "upgrade"), *OUTSIDE_PARTY}
BEFORE_UPGRADE_ARGS = {("serve",): ["--no-migrate"]}
ONECARD_ENV = (
    "ONECARD_DATABASE_URL",
    "ONECARD_DATA_DIR",
    "ONECARD_KEY_STORE",
    "ONECARD_SETTLEMENT_DIR",
    "ONECARD_DEBUG",
)


def leaf_commands() -> Iterator[tuple[list[str], Any]]:
    """Every command a user can run, found by walking the command tree of `onecard --help`."""

    def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        children = getattr(command, "commands", None)
        if children is None:
            yield path, command
            return
        for name, child in sorted(children.items()):
            yield from walk(child, [*path, name])

    yield from walk(typer.main.get_command(app), [])


def plausible_args(command: Any, broken: Path) -> list[str]:
    """Every required argument and option filled with a value of its type: an int in range,
    the first choice, a path nobody can read or write (under a plain file), text "x"."""
    args: list[str] = []
    for param in command.params:
        if not param.required:
            continue
        kind = param.type_descriptor.annotation
        if isinstance(kind, type) and issubclass(kind, Enum):
            value = str(next(iter(kind)).value)
        elif kind is int:
            value = str(max(1, param.min or 1))
        elif kind is Path or "Path" in str(kind):
            value = str(broken / "x")
        else:
            value = "x"
        args += [value] if param.param_type_name == "argument" else [param.opts[0], value]
    return args


def no_traceback(output: str) -> bool:
    return "Traceback" not in output and 'File "' not in output


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A path under a plain file: nothing can be created or read below it."""
    plain = tmp_path / "plain-file"
    plain.write_text("not a folder")
    return plain


@pytest.fixture
def unmigrated_pg(pg_url: str) -> Iterator[str]:
    """An empty PostgreSQL database on the test server: `onecard db upgrade` never ran."""
    parsed = make_url(pg_url)
    name = f"{parsed.database}_unmigrated"
    server = parsed.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield parsed.set(database=name).render_as_string(hide_password=False)
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _environment(broken: Path, database_url: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ONECARD_ENV}
    env.update(ONECARD_DATA_DIR=str(broken / "var"), ONECARD_KEY_STORE=str(broken / "keys.json"))
    if database_url is not None:
        env["ONECARD_DATABASE_URL"] = database_url
    return env


def _run_script(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ONECARD, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _run_preloaded(
    jobs: list[list[str]], env: dict[str, str]
) -> list[subprocess.CompletedProcess[str]]:
    """Each job as `onecard ARGS` in a process of its own, 3 at a time, forked from one that has
    imported the console script's module (tests/clearing/preloaded_cli.py): the same code and
    environment as the console script, without 60 interpreter start-ups."""
    with tempfile.TemporaryDirectory() as work:
        done = subprocess.run(
            [sys.executable, str(PRELOADED), work, "3"],
            input=json.dumps(jobs),
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S * 3,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    return [
        subprocess.CompletedProcess(args, r["returncode"], r["stdout"], r["stderr"])
        for args, r in zip(jobs, json.loads(done.stdout), strict=True)
    ]


def test_the_walk_finds_every_area_of_the_command_line() -> None:
    names = {" ".join(path) for path, _ in leaf_commands()}
    for expected in ("clear", "settle", "statement", "registry card refund", "fares price"):
        assert expected in names
    assert len(names) >= 40


@TOUCHES_PCSCD
def test_every_command_run_by_the_console_script_before_db_upgrade_says_so(
    unmigrated_pg: str, broken: Path
) -> None:
    """The real console script, every leaf command, on a PostgreSQL database never migrated."""
    env = _environment(broken, unmigrated_pg)
    jobs = [
        (path, path + plausible_args(command, broken) + BEFORE_UPGRADE_ARGS.get(tuple(path), []))
        for path, command in leaf_commands()
        if tuple(path) not in BEFORE_UPGRADE_SKIP
    ]
    ran = _run_preloaded([args for _, args in jobs], env)
    results = list(zip([path for path, _ in jobs], ran, strict=True))
    for path, result in results:
        said = result.stdout + result.stderr
        assert no_traceback(said), (path, said)
        if tuple(path) not in NEEDS_NOTHING:
            assert result.returncode in (1, 2), (path, result.returncode, said)
    said_by = {" ".join(path): r.stdout + r.stderr for path, r in results}
    for command in ("clear", "settle", "registry participant list", "quarantine list"):
        assert "run `onecard db upgrade`" in said_by[command], said_by[command]
    # a statement needs its arguments first; then the same line
    statement = _run_script(["statement", "bus-1", "--date", "2026-11-28"], env)
    assert statement.returncode == 1
    assert "not set up: run `onecard db upgrade`" in statement.stderr, statement.stderr


def test_every_command_refuses_a_nonsense_option_in_one_usage_line() -> None:
    runner = CliRunner()
    for path, _command in leaf_commands():
        result = runner.invoke(app, [*path, "--no-such-option-here"], prog_name="onecard")
        assert result.exit_code == 2, (path, result.output)
        assert result.output == (
            f"error: no such option: --no-such-option-here; try: onecard {' '.join(path)} --help\n"
        ), (path, result.output)


USAGE_MISTAKES = {
    ("breaks", "show"): "error: missing argument 'break_id'; try: onecard breaks show --help",
    ("settle", "--date"): "error: option '--date' requires an argument; try: onecard settle --help",
    ("reconcile", "--date", "2026-13-01"): (
        "error: invalid value for --date: '2026-13-01' is not a date (YYYY-MM-DD); "
        "try: onecard reconcile --help"
    ),
    ("no-such-command",): "error: no such command 'no-such-command'; try: onecard --help",
    ("--show-completions",): (
        "error: no such option: --show-completions (Possible options: --install-completion, "
        "--show-completion); try: onecard --help"
    ),
}


@pytest.mark.parametrize("args", sorted(USAGE_MISTAKES))
def test_a_usage_mistake_is_one_line_saying_what_to_type(args: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, list(args), prog_name="onecard")
    assert (result.exit_code, result.output) == (2, USAGE_MISTAKES[args] + "\n")


def test_the_console_script_says_a_usage_mistake_in_one_line_on_stderr() -> None:
    result = _run_script(["bank", "import"], {**os.environ, "ONECARD_DEBUG": ""})
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "error: missing argument 'file'; try: onecard bank import --help\n"


BAD_DATABASES = {
    "no such database": "postgresql+asyncpg://postgres@127.0.0.1:5432/onecard_no_such_database",
    "refused port": "postgresql://postgres@127.0.0.1:1/onecard",
    "unsupported URL": "mysql://root@127.0.0.1/onecard",
    "unparsable URL": "not a url at all",
    "embedded file that cannot be made": None,  # ONECARD_DATA_DIR under a plain file
}


@TOUCHES_PCSCD
@pytest.mark.parametrize("condition", sorted(BAD_DATABASES))
def test_every_command_on_a_bad_database_says_one_line_and_fails(
    condition: str, broken: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _environment(broken, BAD_DATABASES[condition])
    for key in ONECARD_ENV:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        if key.startswith("ONECARD_"):
            monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        for path, command in leaf_commands():
            if tuple(path) in OUTSIDE_PARTY:
                continue
            result = runner.invoke(app, [*path, *plausible_args(command, broken)])
            assert result.exception is None or isinstance(result.exception, SystemExit), (
                path,
                repr(result.exception),
            )
            assert no_traceback(result.output), (path, result.output)
            if tuple(path) not in NEEDS_NOTHING:
                assert result.exit_code in (1, 2), (path, result.exit_code, result.output)
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    ("url", "exit_code", "said"),
    [
        (
            "postgresql://postgres@127.0.0.1:1/onecard",
            1,
            "cannot reach the database at 127.0.0.1:1: is PostgreSQL running? "
            "(set ONECARD_DATABASE_URL)",
        ),
        (
            "postgresql://postgres@127.0.0.1:5432/onecard_no_such_database",
            1,
            "there is no database 'onecard_no_such_database' at 127.0.0.1:5432",
        ),
        ("mysql://root@127.0.0.1/onecard", 2, "onecard runs on PostgreSQL or SQLite"),
        ("::garbage::", 2, "ONECARD_DATABASE_URL is not a database URL"),
    ],
)
def test_a_database_that_cannot_be_used_is_named_with_what_to_do(
    url: str, exit_code: int, said: str, broken: Path
) -> None:
    result = _run_script(["registry", "participant", "list"], _environment(broken, url))
    assert result.returncode == exit_code, result.stderr
    assert said in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert no_traceback(result.stdout + result.stderr)


def test_a_url_without_our_driver_is_run_on_ours(pg_url: str, tmp_path: Path) -> None:
    """postgresql://, postgres:// and sqlite:// are accepted: the project picks the driver."""
    parsed = make_url(pg_url)
    plain = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    short = plain.replace("postgresql://", "postgres://", 1)
    sqlite = f"sqlite:///{(tmp_path / 'own.db').as_posix()}"
    for url in (plain, short, sqlite):
        result = _run_script(["registry", "participant", "list"], _environment(tmp_path, url))
        assert result.returncode == 0, (url, result.stderr)
        assert "participants" in result.stdout


def test_the_embedded_database_sets_itself_up_on_first_use(tmp_path: Path) -> None:
    env = _environment(tmp_path, None)
    env["ONECARD_DATA_DIR"] = str(tmp_path / "var")
    first = _run_script(["quarantine", "list"], env)
    assert first.returncode == 0, first.stderr
    assert "set up the database" in first.stderr
    url = f"sqlite+aiosqlite:///{(tmp_path / 'var' / 'onecard.db').as_posix()}"
    assert not db.ready(url, migrate_sqlite=False)  # at head: nothing left to do
    again = _run_script(["registry", "participant", "list"], env)
    assert again.returncode == 0 and "set up" not in again.stderr, again.stderr


def test_postgresql_is_never_migrated_behind_its_owners_back(unmigrated_pg: str) -> None:
    with pytest.raises(db.DatabaseNotSetUp, match="run `onecard db upgrade`"):
        db.ready(db.normalize_url(unmigrated_pg), migrate_sqlite=True)
    assert asyncio.run(db.current_revision(unmigrated_pg)) is None


def test_an_unexpected_error_is_one_line_naming_its_type_and_the_debug_switch() -> None:
    message, code = explain(ZeroDivisionError("division by zero\nsecond line"))
    assert code == 1
    assert message == (
        "unexpected ZeroDivisionError: division by zero "
        "(run again with ONECARD_DEBUG=1 to see the traceback)"
    )


def test_a_bad_setting_is_named_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    env = _environment(tmp_path, None)
    env["ONECARD_CLEARING_INTERVAL_S"] = "often"
    quiet = _run_script(["quarantine", "list"], env)
    assert quiet.returncode == 2, quiet.stderr
    assert "ONECARD_CLEARING_INTERVAL_S is not valid" in quiet.stderr
    assert no_traceback(quiet.stderr)
    env["ONECARD_DEBUG"] = "1"
    loud = _run_script(["quarantine", "list"], env)
    assert "Traceback" in loud.stderr


def _cli(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.output


def test_fares_price_refuses_a_missing_or_binary_taps_file(tmp_path: Path) -> None:
    from terminals.fares.feed import sample_feed_dir

    feed = str(sample_feed_dir())
    code, said = _cli(["fares", "price", feed, "--taps", str(tmp_path / "missing.csv")])
    assert code == 2 and "does not exist" in said
    binary = tmp_path / "taps.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    code, said = _cli(["fares", "price", feed, "--taps", str(binary)])
    assert code == 2
    assert said.strip() == f"{binary}: not a text file (a UTF-8 CSV of taps is expected)"


def test_terminal_journal_with_a_missing_or_broken_config_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "terminal.toml"
    code, said = _cli(["terminal", "journal", "--config", str(missing)])
    assert (code, said.strip()) == (1, f"error: no terminal configuration at {missing}")
    missing.write_text("terminal_id = [broken")
    code, said = _cli(["terminal", "journal", "--config", str(missing)])
    assert code == 1 and said.startswith(f"error: {missing} is not valid TOML")
    assert len(said.strip().splitlines()) == 1
    missing.write_bytes(b"\xff\xfe\x00binary")
    code, said = _cli(["terminal", "journal", "--config", str(missing)])
    assert (code, said.strip()) == (1, f"error: {missing} is not a text (UTF-8 TOML) file")


def test_provision_with_a_bad_terminal_id_says_so_and_leaves_no_folder(tmp_path: Path) -> None:
    assert _cli(["card", "keys", "--out", str(tmp_path / "keys.json")])[0] == 0
    out = tmp_path / "terminal"
    code, said = _cli(
        [
            "terminal",
            "provision",
            "--terminal-id",
            "XYZ",
            "--out",
            str(out),
            "--key-store",
            str(tmp_path / "keys.json"),
        ]
    )
    assert code == 2 and "12 hex digits" in said
    assert not out.exists()


def test_provisioning_checks_the_terminal_id_before_making_any_file(tmp_path: Path) -> None:
    from cardio.keystore import create_key_store
    from terminals.config import ConfigError, provision_terminal

    store = create_key_store(tmp_path / "keys.json")
    with pytest.raises(ConfigError, match="12 hex digits"):
        provision_terminal(store, "XYZ", tmp_path / "out")
    assert not (tmp_path / "out").exists()
