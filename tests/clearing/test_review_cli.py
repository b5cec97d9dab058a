"""An outside tester's findings: commands given odd input a newcomer or a finance officer types
(an impossible or empty date, a folder where a file belongs, a stray file among the cards) say
what is wrong, naming what the user typed, in one line with exit 2 (used wrongly) or 1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cardio.atomicfile import MODE_SECRET, write_bytes_atomic
from clearing.calendar import BusinessCalendar
from clearing.cli import app
from clearing.settings import get_settings
from terminals.config import load_config


@pytest.fixture
def empty_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The embedded default in an empty folder, as a newcomer starts."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ONECARD_DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'onecard.db'}")
    monkeypatch.setenv("ONECARD_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("ONECARD_KEY_STORE", str(tmp_path / "var" / "keys.json"))
    monkeypatch.delenv("ONECARD_SETTLEMENT_DIR", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


@pytest.mark.parametrize("typed", ["2030-02-30", "", "  ", "99999-01-01", "yesterday"])
def test_settle_with_a_date_that_is_no_day_is_a_usage_error_that_settles_nothing(
    empty_install: Path, typed: str
) -> None:
    # An empty --date (a script's unset $DAY) used to settle the last closed day silently.
    result = CliRunner().invoke(app, ["settle", "--date", typed])
    assert result.exit_code == 2, result.output
    said = _flat(result.output)
    assert "--date" in said and "is not a day" in said and "YYYY-MM-DD" in said, said
    assert "isoformat" not in said
    assert not (empty_install / "var" / "settlement").exists()


def test_a_failed_atomic_write_names_the_file_asked_for_not_its_temporary(tmp_path: Path) -> None:
    folder = tmp_path / "cards"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as raised:
        write_bytes_atomic(folder, b"{}", mode=MODE_SECRET)
    assert raised.value.filename == str(folder)
    assert [p.name for p in folder.iterdir()] == [] and sorted(
        p.name for p in tmp_path.iterdir()
    ) == ["cards"]


def test_card_issue_over_a_folder_says_so_naming_the_folder(empty_install: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["card", "keys", "--out", "var/keys.json"]).exit_code == 0
    (empty_install / "cards").mkdir()
    result = runner.invoke(
        app,
        [
            "card",
            "issue",
            "--out",
            "cards",
            "--force",
            "--number",
            "3100000000000070",
            "--type",
            "adult",
            "--balance",
            "500",
            "--holder",
            "Li",
            "--keys",
            "var/keys.json",
        ],
    )
    assert result.exit_code == 2, result.output  # refused before anything is written
    assert "cards is a folder: name the card file" in _flat(result.output), result.output
    assert list((empty_install / "cards").iterdir()) == []


def test_a_key_store_path_that_is_a_folder_is_not_told_to_chmod(empty_install: Path) -> None:
    (empty_install / "keys").mkdir(mode=0o755)
    result = CliRunner().invoke(
        app,
        [
            "card",
            "issue",
            "--out",
            "c.json",
            "--number",
            "3100000000000071",
            "--type",
            "adult",
            "--balance",
            "500",
            "--holder",
            "Li",
            "--keys",
            "keys",
        ],
    )
    assert result.exit_code == 1, result.output
    said = _flat(result.output)
    assert "keys is a folder, not a key store" in said and "chmod" not in said, said


def test_an_opening_balance_over_the_cards_limit_names_the_limit(empty_install: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["card", "keys", "--out", "var/keys.json"]).exit_code == 0
    result = runner.invoke(
        app,
        [
            "card",
            "issue",
            "--out",
            "c.json",
            "--number",
            "3100000000000072",
            "--type",
            "adult",
            "--balance",
            str(10**12),
            "--holder",
            "Li",
            "--keys",
            "var/keys.json",
        ],
    )
    assert result.exit_code == 1, result.output
    said = _flat(result.output)
    assert "0..limit" not in said and "outside 0..100000 fen" in said, said
    assert not (empty_install / "c.json").exists()


def test_simulate_names_the_file_among_the_cards_that_is_no_card(empty_install: Path) -> None:
    cards = empty_install / "cards"
    cards.mkdir()
    (cards / "notes.json").write_text(json.dumps({"a": 1}))
    (empty_install / "terminal.toml").write_text('terminal_id = "000001000001"\n')
    result = CliRunner().invoke(
        app,
        ["terminal", "simulate", "--config", "terminal.toml", "--cards", "cards", "--taps", "1"],
    )
    assert result.exit_code == 1, result.output
    said = _flat(result.output)
    assert said.startswith("error: cards/notes.json: the card file is malformed"), said


def test_clear_with_a_chunk_out_of_range_is_a_usage_error(empty_install: Path) -> None:
    for chunk in ("0", "40000"):
        result = CliRunner().invoke(app, ["clear", "--chunk", chunk])
        assert result.exit_code == 2, result.output
        said = _flat(result.output)
        assert "--chunk" in said and "unexpected" not in said, said


def test_the_simulation_table_shows_whole_terminal_ids_at_80_columns() -> None:
    from rich.console import Console

    from terminals.cli.terminal import _print_simulation
    from terminals.fleet import BusDay

    console = Console(width=80, record=True)
    reports = [
        BusDay("000001000001", "1", taps=15, paid=15, fares_fen=800, records_uploaded=15),
        BusDay("000001000002", "2", taps=15, paid=15, fares_fen=700, records_uploaded=15),
    ]
    _print_simulation(console, reports, [0, 0], 1500, date(2026, 12, 5))
    shown = console.export_text()
    assert "000001000001" in shown and "000001000002" in shown, shown


def test_an_atomic_write_under_a_file_says_it_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text("{}")
    with pytest.raises(NotADirectoryError) as raised:
        write_bytes_atomic(tmp_path / "keys.json" / "k.json", b"{}", mode=MODE_SECRET)
    assert raised.value.filename == str(tmp_path / "keys.json")


@pytest.mark.parametrize("folder", ["50% off", "数据", "%41"])
def test_the_embedded_database_sets_itself_up_in_a_folder_of_any_name(
    empty_install: Path, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    # A '%' (or a non-ASCII name, percent-encoded in the URL) reached Alembic's configparser.
    data = empty_install / folder / "var"
    monkeypatch.delenv("ONECARD_DATABASE_URL")
    monkeypatch.setenv("ONECARD_DATA_DIR", str(data))
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["quarantine", "list"])
    assert result.exit_code == 0, result.output
    assert (data / "onecard.db").is_file()


def test_a_sqlite_url_naming_a_non_ascii_file_is_used_as_typed(
    empty_install: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONECARD_DATABASE_URL", f"sqlite:///{empty_install / 'ünï.db'}")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["registry", "participant", "list"])
    assert result.exit_code == 0, result.output
    assert (empty_install / "ünï.db").is_file()


def test_quarantine_commands_used_wrongly_exit_2_like_every_command(
    empty_install: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    for args in (
        ["quarantine", "list", "--limit", "0"],
        ["quarantine", "release", "1", "--note", ""],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.strip().splitlines()[-1].startswith("error: "), result.output
    monkeypatch.setenv("ONECARD_DATABASE_URL", "mysql://root@127.0.0.1/onecard")
    get_settings.cache_clear()
    result = runner.invoke(app, ["quarantine", "list"])
    assert result.exit_code == 2, result.output
    assert "onecard runs on PostgreSQL or SQLite" in _flat(result.output)


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("ONECARD_SETTLEMENT_CUTOFF", "25:00", "HH:MM"),
        ("ONECARD_SETTLEMENT_CUTOFF", "four", "HH:MM"),
        ("ONECARD_BUSINESS_TIME_ZONE", "Mars/Olympus", "Mars/Olympus"),
        ("ONECARD_BUSINESS_TIME_ZONE", "", "time zone"),
    ],
)
def test_a_bad_business_day_setting_is_named_not_unexpected(
    empty_install: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, said: str
) -> None:
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["settle"])
    assert result.exit_code == 2, result.output
    flat = _flat(result.output)
    assert flat.startswith(f"error: {name} is not valid:") and said in flat, flat
    assert "unexpected" not in flat
    assert not (empty_install / "var" / "settlement").exists()


def test_a_settlement_folder_that_is_a_file_says_it_is_not_a_folder(
    empty_install: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (empty_install / "bank").write_text("")
    monkeypatch.setenv("ONECARD_SETTLEMENT_DIR", str(empty_install / "bank"))
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["settle"])
    assert result.exit_code == 1, result.output
    assert _flat(result.output).endswith(f"error: {empty_install / 'bank'}: Not a directory")


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite://", "sqlite:///:memory:"])
def test_a_sqlite_url_naming_no_file_is_refused_not_set_up_in_memory(
    empty_install: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    # It said "set up the database in the SQLite file :memory:", then "not set up".
    monkeypatch.setenv("ONECARD_DATABASE_URL", url)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["registry", "participant", "list"])
    assert result.exit_code == 2, result.output
    flat = _flat(result.output)
    assert flat.startswith("error: ONECARD_DATABASE_URL names no SQLite file"), flat
    assert "set up" not in flat


def test_card_read_prints_a_holder_name_that_looks_like_markup_as_it_is(
    empty_install: Path,
) -> None:
    # A holder "[/x]" made `card read` fail with "unexpected MarkupError"; "[bold]Li" lost text.
    runner = CliRunner()
    assert runner.invoke(app, ["card", "keys", "--out", "var/keys.json"]).exit_code == 0
    for number, holder in (("3100000000000089", "[/x]"), ("3100000000000090", "[bold]Li")):
        issued = runner.invoke(
            app,
            [
                "card",
                "issue",
                "--out",
                f"{number}.json",
                "--number",
                number,
                "--type",
                "adult",
                "--holder",
                holder,
                "--keys",
                "var/keys.json",
            ],
        )
        assert issued.exit_code == 0, issued.output
        read = runner.invoke(app, ["card", "read", "--card", f"{number}.json"])
        assert read.exit_code == 0, read.output
        assert f"holder   {holder}" in read.output, read.output


def test_serve_logs_the_list_key_fingerprint_on_one_whole_line(tmp_path: Path) -> None:
    # docs/operations.md greps it from a log file, where the console folded it at 80 columns.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONECARD_")}
    env.update(ONECARD_DATA_DIR=str(tmp_path / "var"), COLUMNS="80")
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "onecard"), "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        try:
            lines: list[str] = []
            for _ in range(600):  # until the banner is out (the server is polled, not timed)
                lines = [
                    line for line in log.read_text().splitlines() if "list-signing key" in line
                ]
                if lines or server.poll() is not None:
                    break
                time.sleep(0.1)
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert len(lines) == 1, log.read_text()
    assert lines[0].endswith("(terminal provision --server-key-fingerprint)"), lines[0]
    assert "SHA256:" in lines[0]


def test_settling_the_current_day_says_when_it_closes_in_local_time(empty_install: Path) -> None:
    today = BusinessCalendar().business_day(datetime.now(UTC))
    result = CliRunner().invoke(app, ["settle", "--date", str(today)])
    assert result.exit_code == 1, result.output
    said = _flat(result.output)
    closes = f"closes at {today + timedelta(days=1)} 04:00 Asia/Shanghai (20:00 UTC)"
    assert closes in said and "--force" in said, said


def _provision(out: str, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        [
            "terminal",
            "provision",
            "--terminal-id",
            "000001000050",
            "--out",
            out,
            "--key-store",
            "var/keys.json",
            "--server-public-key",
            "ab" * 32,
            *extra,
        ],
    )
    return result.exit_code, _flat(result.output)


def test_provision_writes_a_config_it_can_read_whatever_the_stop_is_called(
    empty_install: Path,
) -> None:
    # A '"' in --stop (or --clearing-url) was written into the TOML unescaped: a config that
    # `terminal run/journal/simulate` then refused as not valid TOML.
    assert CliRunner().invoke(app, ["card", "keys", "--out", "var/keys.json"]).exit_code == 0
    code, said = _provision("bus", "--stop", 'Old "Town" \\ Gate', "--clearing-url", "http://h/")
    assert code == 0, said
    config = load_config(empty_install / "bus" / "terminal.toml")
    assert config.stop_id == 'Old "Town" \\ Gate' and config.clearing_url == "http://h/"


def test_provision_refuses_a_route_its_fare_feed_does_not_have(empty_install: Path) -> None:
    # Such a bus refused every tap (no_fare) and nobody was told at provisioning.
    assert CliRunner().invoke(app, ["card", "keys", "--out", "var/keys.json"]).exit_code == 0
    code, said = _provision("bus", "--route", "99")
    assert code == 1, said
    assert "route '99' is not in the fare feed" in said, said
    assert not (empty_install / "bus").exists()


def test_ledger_balances_and_history_show_whole_account_names(empty_install: Path) -> None:
    # At 80 columns every card account was cut to "card:310000000…": whose balance is whose?
    runner = CliRunner()
    assert runner.invoke(app, ["card", "keys", "--out", "var/keys.json"]).exit_code == 0
    issued = runner.invoke(
        app,
        [
            "card",
            "issue",
            "--register",
            "--out",
            "c.json",
            "--number",
            "3100000000000042",
            "--type",
            "adult",
            "--balance",
            "500",
            "--holder",
            "Li",
            "--holder-id",
            "R-42",
            "--keys",
            "var/keys.json",
        ],
    )
    assert issued.exit_code == 0, issued.output
    balances = runner.invoke(app, ["ledger", "balances"])
    assert balances.exit_code == 0, balances.output
    for name in ("card:3100000000000042", "card-deposit:3100000000000042"):
        assert name in balances.output, balances.output
    missing = runner.invoke(app, ["ledger", "history", "[/x]"])
    assert missing.exit_code == 1 and "no account named [/x]" in missing.output, missing.output


@pytest.mark.parametrize("out", ["", ".", "var"])
def test_card_keys_onto_a_folder_is_a_usage_error(empty_install: Path, out: str) -> None:
    (empty_install / "var").mkdir()
    result = CliRunner().invoke(app, ["card", "keys", "--out", out, "--force"])
    assert result.exit_code == 2, result.output
    assert "is a folder: name the key store file" in _flat(result.output), result.output


@pytest.mark.parametrize("extra", [["--date", "2026-12-01"], ["--force"]])
def test_settle_undo_future_with_a_date_or_force_is_a_usage_error(
    empty_install: Path, extra: list[str]
) -> None:
    # They were silently ignored: the officer believed a day had been settled.
    result = CliRunner().invoke(app, ["settle", "--undo-future", *extra])
    assert result.exit_code == 2, result.output
    assert "--undo-future takes no --date or --force" in _flat(result.output)


@pytest.mark.parametrize("records_max", ["0", "-5", str(2**63)])
def test_clear_max_out_of_range_is_a_usage_error(empty_install: Path, records_max: str) -> None:
    result = CliRunner().invoke(app, ["clear", "--max", records_max])
    assert result.exit_code == 2, result.output
    assert "--max" in _flat(result.output)


@pytest.mark.parametrize("token_id", ["0", str(2**31), "99999999999999999999999"])
def test_token_revoke_of_an_id_past_the_column_is_a_usage_error(
    empty_install: Path, token_id: str
) -> None:
    # On PostgreSQL it reached the database: "unexpected DBAPIError ... out of int32 range".
    result = CliRunner().invoke(app, ["registry", "token", "revoke", token_id])
    assert result.exit_code == 2, result.output
    assert "unexpected" not in result.output


@pytest.mark.parametrize("actor", ["", "  ", "a" * 101])
def test_settle_by_an_actor_the_audit_cannot_hold_is_a_usage_error(
    empty_install: Path, actor: str
) -> None:
    # 101 characters reached PostgreSQL ("value too long", unexpected); "" settled unaudited.
    result = CliRunner().invoke(app, ["settle", "--actor", actor])
    assert result.exit_code == 2, result.output
    assert "--actor" in _flat(result.output)
    assert not (empty_install / "var" / "settlement").exists()


@pytest.mark.parametrize(
    ("extra", "option"),
    [(["--label", "x" * 201], "--label"), (["--subject", "x" * 65], "--subject")],
)
def test_token_issue_with_text_past_its_column_is_a_usage_error(
    empty_install: Path, extra: list[str], option: str
) -> None:
    # A 201-character label reached PostgreSQL: "unexpected DBAPIError ... value too long".
    result = CliRunner().invoke(app, ["registry", "token", "issue", "finance", *extra])
    assert result.exit_code == 2, result.output
    assert option in _flat(result.output)


def test_a_token_whose_subject_looks_like_markup_is_still_shown(empty_install: Path) -> None:
    # "[/x]" broke the line after the token was made: its secret, shown once, was lost.
    result = CliRunner().invoke(app, ["registry", "token", "issue", "finance", "--subject", "[/x]"])
    assert result.exit_code == 0, result.output
    assert "(finance, [/x]); keep it secret:" in result.output
    assert result.output.strip().splitlines()[-1].startswith("oc_")


def test_an_escrow_account_written_with_hyphens_still_collides(
    empty_install: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ONECARD_ESCROW_ACCOUNT "CN00-1111-2222-3333" let a participant be paid into it.
    monkeypatch.setenv("ONECARD_ESCROW_ACCOUNT", " cn00-1111-2222-3333")
    get_settings.cache_clear()
    result = CliRunner().invoke(
        app,
        [
            "registry", "participant", "add", "bus-4", "--name", "B", "--kind", "bus_operator",
            "--commission-bp", "1", "--bank-account", "CN00 1111 2222 3333", "--bank-name", "B",
        ],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "participant_account_is_escrow" in result.output


def test_serve_on_a_taken_port_fails_with_one_line_and_exit_1(tmp_path: Path) -> None:
    # uvicorn's own exit code 3 leaked out, with no line of ours saying what to do.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONECARD_")}
    env.update(ONECARD_DATA_DIR=str(tmp_path / "var"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(Path(sys.executable).parent / "onecard"), "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1, result.stderr
    last = " ".join(result.stderr.strip().splitlines()[-1].split())
    assert last.startswith(f"error: cannot serve on 127.0.0.1:{port}: the port is taken"), last


def test_a_corrupt_sam_serial_file_is_named_with_what_to_do(empty_install: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["card", "keys", "--out", "var/keys.json"]).exit_code == 0
    issued = runner.invoke(
        app,
        ["card", "issue", "--out", "card.json", "--number", "3100000000000073", "--balance",
         "1000", "--holder", "Li", "--keys", "var/keys.json", "--valid-from", "2026-01-01"],
    )  # fmt: skip
    assert issued.exit_code == 0, issued.output
    code, said = _provision("bus")
    assert code == 0, said
    config = load_config(empty_install / "bus" / "terminal.toml")
    config.sam_serial_path.parent.mkdir(parents=True, exist_ok=True)
    config.sam_serial_path.write_text("x\n")
    result = runner.invoke(
        app,
        ["terminal", "simulate", "--config", "bus/terminal.toml", "--cards", "card.json",
         "--taps", "1", "--day", "2026-11-30"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    said = _flat(result.output)
    assert "unexpected" not in said and "sam-serial" in said and "is corrupt" in said, said
    assert "onecard terminal journal" in said, said


def test_clear_with_nothing_staged_says_so_without_needing_keys(empty_install: Path) -> None:
    # It failed for lack of the key store on an install that had received no taps yet.
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    assert not (empty_install / "var" / "keys.json").exists()
    result = CliRunner().invoke(app, ["clear"])
    assert result.exit_code == 0, result.output
    assert "nothing to clear" in _flat(result.output)
