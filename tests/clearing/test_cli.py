"""The `onecard` command as a newcomer meets it."""

from __future__ import annotations

from typer.testing import CliRunner

from clearing.cli import app


def test_help_lists_the_database_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "db" in result.output


def test_db_upgrade_creates_the_embedded_database(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ONECARD_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ONECARD_DATABASE_URL", raising=False)
    from clearing.settings import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["db", "upgrade"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert (tmp_path / "onecard.db").exists()


def test_finance_commands_refuse_bad_input_with_a_message_not_a_traceback() -> None:
    runner = CliRunner()
    for args, exit_code, said in (
        (["quarantine", "show", str(2**70)], 2, "4611686018427387904"),
        (["quarantine", "list", "--after", str(2**63)], 2, "4611686018427387904"),
        (["quarantine", "write-off", "0", "--note", "x"], 2, "1"),
        (["settle", "--date", "1900-01-01"], 2, "between 2000-01-01 and 2100-12-31"),
        (["subsidies", "--from", "0001-01-01"], 2, "between 2000-01-01 and 2100-12-31"),
        (["subsidies", "--from", "2026-01-01", "--to", "2101-01-01"], 2, "--to"),
        (["statement", "bus-1", "--date", "9999-12-31"], 2, "use YYYY-MM-DD between"),
        (["statement", "bus-1", "--date", "yesterday"], 2, "use YYYY-MM-DD"),
        (
            ["subsidies", "--from", "2026-02-30"],
            2,
            "day is out of range for month): use YYYY-MM-DD",
        ),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == exit_code, (args, result.output)
        assert said in " ".join(result.output.replace("│", " ").split()), (args, result.output)
        assert not isinstance(result.exception, (OverflowError, ValueError)), args
