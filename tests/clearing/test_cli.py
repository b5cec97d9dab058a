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
