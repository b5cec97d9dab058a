"""`onecard bank import FILE` on the embedded database: a bank's statement imports, its fund
payment is booked, a second import changes nothing; a missing or malformed file is one line and
the right exit code, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clearing.cli import app
from clearing.settings import get_settings

HAND_WRITTEN = Path(__file__).parent.parent / "data" / "camt053_escrow_batch.xml"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("ONECARD_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ONECARD_DATABASE_URL", raising=False)
    monkeypatch.delenv("ONECARD_ESCROW_ACCOUNT", raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    yield runner
    get_settings.cache_clear()


def test_a_statement_imports_books_its_fund_payment_once_and_lists(runner: CliRunner) -> None:
    added = runner.invoke(
        app,
        [
            "registry", "participant", "add", "fund-senior", "--name", "City Senior Fund",
            "--kind", "subsidy_fund", "--commission-bp", "0", "--scheme", "senior",
            "--bank-account", "6222000000009001", "--bank-name", "Bank of the City",
        ],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    first = runner.invoke(app, ["bank", "import", str(HAND_WRITTEN)])
    assert first.exit_code == 0, first.output
    assert "3 entries stored" in first.output
    assert "subsidy:senior" in first.output and "1,250.00" in first.output
    assert "4 entries refused" in first.output and "currency_not_cny" in first.output
    again = runner.invoke(app, ["bank", "import", str(HAND_WRITTEN)])
    assert again.exit_code == 0, again.output
    assert "imported before: nothing changed" in again.output
    listed = runner.invoke(app, ["bank", "statements"])
    assert listed.exit_code == 0, listed.output
    assert "STMT-20261206" in listed.output and "99,870.50" in listed.output


def test_a_missing_file_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["bank", "import", str(tmp_path / "nope.xml")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"not xml at all", "bank_statement_malformed"),
        (
            HAND_WRITTEN.read_bytes().replace(b"6222000000000000001", b"6222999999999999999"),
            "bank_statement_wrong_account",
        ),
    ],
)
def test_a_bad_file_is_one_line_and_exit_1(
    runner: CliRunner, tmp_path: Path, content: bytes, code: str
) -> None:
    path = tmp_path / "statement.xml"
    path.write_bytes(content)
    result = runner.invoke(app, ["bank", "import", str(path)])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {code}: "), result.output
    listed = runner.invoke(app, ["bank", "statements"])
    assert "no statement imported yet" in listed.output


def test_a_sample_of_a_day_never_settled_says_so(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "sample.xml"
    result = runner.invoke(app, ["bank", "sample", "--date", "2026-12-05", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: bank_sample_nothing_to_pay: 2026-12-05")
    assert not out.exists()
    wrong = runner.invoke(app, ["bank", "sample", "--date", "5 Dec", "--out", str(out)])
    assert wrong.exit_code == 2
