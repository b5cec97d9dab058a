"""`onecard registry ...` as admin staff use it, on the embedded SQLite default."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from clearing.cli import app
from clearing.settings import get_settings


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    monkeypatch.setenv("ONECARD_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ONECARD_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    yield runner
    get_settings.cache_clear()


def run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, ["registry", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_admin_sets_up_an_operator_a_terminal_a_card_and_tokens(embedded) -> None:
    runner = embedded
    run(
        runner,
        "participant",
        "add",
        "bus-1",
        "--name",
        "Bus One",
        "--kind",
        "bus_operator",
        "--commission-bp",
        "150",
        "--bank-account",
        "6222020200112233445",
        "--bank-name",
        "ICBC",
    )
    assert "bus-1" in run(runner, "participant", "list")
    run(
        runner,
        "terminal",
        "add",
        "000001000050",
        "--participant",
        "bus-1",
        "--public-key",
        "ab" * 32,
        "--line",
        "12",
    )
    listed = run(runner, "terminal", "list")
    assert "000001000050" in listed
    # The owner by the code it was added with, not the registry's internal id.
    assert "bus-1" in listed and "participant id" not in listed, listed
    run(
        runner,
        "card",
        "issue",
        "3100000000000001",
        "--holder-id",
        "r-1",
        "--holder-name",
        "Li",
        "--deposit-fen",
        "2000",
        "--first-load-fen",
        "5000",
    )
    shown = run(runner, "card", "show", "3100000000000001")
    assert "balance 50.00 CNY" in shown and "active" in shown
    assert "deny list version 1" in run(runner, "card", "lost", "3100000000000001")
    coverage = run(runner, "deny-coverage")
    assert "v1: 0/1 active terminals" in coverage and "000001000050" in coverage
    issued = run(runner, "token", "issue", "operator", "--subject", "bus-1")
    secret = issued.strip().splitlines()[-1]
    assert secret.startswith("oc_")
    listed = run(runner, "token", "list")
    assert "operator" in listed and secret not in listed
    assert "revoked" in run(runner, "token", "revoke", "1")


def test_bad_input_is_reported_not_a_traceback(embedded) -> None:
    runner = embedded
    bad = runner.invoke(
        app,
        [
            "registry",
            "participant",
            "add",
            "Bad Code",
            "--name",
            "x",
            "--kind",
            "clinic",
            "--commission-bp",
            "5",
            "--bank-account",
            "6222020200112233445",
            "--bank-name",
            "B",
        ],
    )
    assert bad.exit_code == 2 and "code" in bad.output
    missing = runner.invoke(app, ["registry", "card", "lost", "3100000000000009"])
    assert missing.exit_code == 1 and "not_found" in missing.output
    token = runner.invoke(app, ["registry", "token", "issue", "operator", "--subject", "nobody"])
    assert token.exit_code == 1 and "not_found" in token.output


def test_serve_is_a_command() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output


def test_a_first_load_above_the_chip_balance_limit_is_refused(embedded) -> None:
    """The chip holds at most 100,000 fen: a bigger first load would be books the card can't show."""
    args = ["card", "issue", "3100000000000009", "--holder-id", "r-9", "--holder-name", "Wu"]
    result = embedded.invoke(app, ["registry", *args, "--first-load-fen", "100001"])
    assert result.exit_code == 2, result.output
    assert "first_load_fen" in result.output and "100000" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    run(embedded, *args, "--first-load-fen", "100000")


def test_a_public_key_already_held_by_a_terminal_is_refused(embedded) -> None:
    """Two terminals with one key could sign each other's batches."""
    run(
        embedded,
        "participant",
        "add",
        "bus-2",
        "--name",
        "Bus Two",
        "--kind",
        "bus_operator",
        "--commission-bp",
        "150",
        "--bank-account",
        "6222020200112233446",
        "--bank-name",
        "ICBC",
    )
    add = ["terminal", "add", "--participant", "bus-2", "--public-key", "CD" * 32]
    run(embedded, *add[:2], "000001000060", *add[2:])
    twin = embedded.invoke(app, ["registry", *add[:2], "000001000061", *add[2:]])
    assert twin.exit_code == 1, twin.output
    assert "000001000060" in twin.output and "public key" in twin.output
    assert "000001000061" not in run(embedded, "terminal", "list")
