"""`onecard card issue --register`: the chip and the books of a card in one command.

The card file and the registry must agree (number, type, balance = first load, deposit), and a
refusal on either side leaves neither half behind. Embedded SQLite default, real ledger.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cardio.softcard import SoftCard
from clearing.cli import app
from clearing.settings import get_settings


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    monkeypatch.setenv("ONECARD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ONECARD_KEY_STORE", str(tmp_path / "keys.json"))
    monkeypatch.delenv("ONECARD_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["card", "keys"]).exit_code == 0
    yield runner
    get_settings.cache_clear()


def issue(runner: CliRunner, out: Path, number: str, *extra: str):
    return runner.invoke(
        app,
        [
            "card",
            "issue",
            "--out",
            str(out),
            "--number",
            number,
            "--type",
            "student",
            "--balance",
            "5000",
            "--holder",
            "Li Lei",
            *extra,
        ],
    )


def books_of(runner: CliRunner, number: str) -> str:
    shown = runner.invoke(app, ["registry", "card", "show", number])
    assert shown.exit_code == 0, shown.output
    return shown.output


def test_card_issue_register_personalises_the_chip_and_opens_matching_books(
    embedded, tmp_path
) -> None:
    out = tmp_path / "cards" / "li-lei.json"
    result = issue(
        embedded,
        out,
        "3100000000000042",
        "--register",
        "--holder-id",
        "R-0042",
        "--deposit",
        "2000",
    )
    assert result.exit_code == 0, result.output
    assert "books opened" in result.output
    read = embedded.invoke(app, ["card", "read", "--card", str(out), "--json"])
    chip = json.loads(read.output)
    assert (chip["card_no"], chip["card_type"], chip["balance_fen"]) == (
        "3100000000000042",
        "student",
        5000,
    )
    books = " ".join(books_of(embedded, "3100000000000042").split())
    assert re.search(r"student active holder R-0042 balance 50\.00 CNY deposit 20\.00 CNY", books)
    assert "issued" in books


def test_a_card_the_books_refuse_leaves_no_card_file(embedded, tmp_path) -> None:
    first = issue(
        embedded, tmp_path / "a.json", "3100000000000043", "--register", "--holder-id", "R-1"
    )
    assert first.exit_code == 0, first.output
    again = tmp_path / "b.json"
    refused = issue(embedded, again, "3100000000000043", "--register", "--holder-id", "R-2")
    assert refused.exit_code == 1
    assert "already exists" in refused.output
    assert not again.exists()
    assert not list(tmp_path.glob(".*issuing"))


def test_register_without_a_holder_id_is_a_usage_error_and_issues_nothing(
    embedded, tmp_path
) -> None:
    out = tmp_path / "c.json"
    refused = issue(embedded, out, "3100000000000044", "--register")
    assert refused.exit_code == 2
    assert "--holder-id" in refused.output
    assert not out.exists()
    shown = embedded.invoke(app, ["registry", "card", "show", "3100000000000044"])
    assert shown.exit_code == 1


def test_card_issue_without_register_still_writes_only_the_chip(embedded, tmp_path) -> None:
    out = tmp_path / "d.json"
    result = issue(embedded, out, "3100000000000045")
    assert result.exit_code == 0, result.output
    assert SoftCard.load(out).balance_fen == 5000
    assert "--register opens its books too" in " ".join(result.output.split())
    shown = embedded.invoke(app, ["registry", "card", "show", "3100000000000045"])
    assert shown.exit_code == 1


def test_register_onto_a_folder_opens_no_books_and_writes_no_card(embedded, tmp_path) -> None:
    # It opened the books (deposit and first load taken) and then failed to write the card.
    folder = tmp_path / "cards"
    folder.mkdir()
    result = issue(
        embedded, folder, "3100000000000043", "--register", "--holder-id", "R-43", "--force"
    )
    assert result.exit_code == 2, result.output
    assert "isafolder:namethecardfile" in "".join(result.output.replace("│", "").split())
    shown = embedded.invoke(app, ["registry", "card", "show", "3100000000000043"])
    assert shown.exit_code == 1 and "no card 3100000000000043" in shown.output
    assert list(folder.iterdir()) == []


def test_register_under_a_file_says_one_line_naming_the_card_file(embedded, tmp_path) -> None:
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "c.json"
    result = issue(embedded, out, "3100000000000044", "--register", "--holder-id", "R-44")
    assert result.exit_code == 1, result.output
    said = "".join(result.output.split())  # one message, however the console wrapped it
    assert said == "".join(f"error: cannot write {out}: Not a directory".split())
