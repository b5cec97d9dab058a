"""What staff read on the command line: money in yuan, times in the business time zone,
accounts never cut, a refund that asks and is audited, a statement that knows its participant."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

from cardio.cli import money as card_yuan
from clearing.cli import app
from clearing.cli.clearing_cmd import print_record
from clearing.cli.money import yuan
from clearing.cli.registry_cmd import participants_table
from clearing.registry.models import ParticipantKind, ParticipantStatus
from clearing.settings import get_settings

WIDTH = 80
ONECARD = str(Path(sys.executable).parent / "onecard")
CARD = "3100000000000001"


@pytest.fixture
def embedded(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """The embedded default in a fresh folder, never set up by hand."""
    monkeypatch.setenv("ONECARD_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ONECARD_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _render(renderable: object) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=WIDTH, color_system=None, force_terminal=False).print(renderable)
    return buffer.getvalue()


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_yuan_is_exact_and_reads_back_to_the_same_fen(fen: int) -> None:
    text = yuan(fen)
    whole, _, cents = text.replace(",", "").lstrip("-").partition(".")
    assert len(cents) == 2
    assert (-1 if text.startswith("-") else 1) * (int(whole) * 100 + int(cents)) == fen


def test_small_negative_amounts_keep_their_sign_and_size() -> None:
    assert yuan(-5) == "-0.05"
    assert yuan(-12345) == "-123.45"
    assert card_yuan(-5) == "¥-0.05"  # was "¥-1.95": floor division of a negative
    assert yuan(123456789) == "1,234,567.89"


def test_quarantine_show_tells_times_in_the_business_time_zone() -> None:
    tapped = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)  # 07:30 on the 28th in Shanghai
    detail = SimpleNamespace(
        record={"id": 7, "occurred_at": tapped, "amount_fen": 250, "card_no": CARD},
        actions=(
            SimpleNamespace(
                at=datetime(2026, 11, 28, 1, 0, tzinfo=UTC),
                action="quarantined",
                reason="bad_tac",
                override=None,
                actor="engine",
                note="TAC does not verify",
            ),
        ),
        disposition=None,
    )
    buffer = io.StringIO()
    print_record(7, detail, Console(file=buffer, width=WIDTH, color_system=None))
    text = buffer.getvalue()
    assert "2026-11-28 07:30:00 CST" in text
    assert "2026-11-28 09:00:00 CST quarantined" in text
    assert "2.50" in text and "250" not in text.replace("2026", "")
    assert "+00:00" not in text


@pytest.mark.parametrize(
    "account", ["6222020200112233445", "6222 0202 0011 2233 4455 667", "GB82WEST12345698765432"]
)
def test_participant_list_never_cuts_a_bank_account_at_80_columns(account: str) -> None:
    rows = [
        SimpleNamespace(
            code="clinic-central-hospital",
            name="Central Hospital of the City, Outpatients Department",
            kind=ParticipantKind.CLINIC,
            commission_bp=125,
            bank_account=account,
            bank_name="Industrial and Commercial Bank of China, City Branch",
            status=ParticipantStatus.ACTIVE,
        )
    ]
    text = _render(participants_table(rows))
    assert "…" not in text
    assert all(len(line) <= WIDTH for line in text.splitlines()), text
    assert account in text, text  # whole, on one line
    assert "1.25%" in text and "active" in text


def _issue(runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        [
            "registry",
            "card",
            "issue",
            CARD,
            "--holder-id",
            "r-1",
            "--holder-name",
            "Li",
            "--first-load-fen",
            "1234",
        ],
    )
    assert result.exit_code == 0, result.output


def test_card_show_tells_money_in_yuan(embedded: CliRunner) -> None:
    _issue(embedded)
    shown = embedded.invoke(app, ["registry", "card", "show", CARD])
    assert shown.exit_code == 0, shown.output
    assert "balance 12.34 CNY deposit 20.00 CNY" in " ".join(shown.output.split())
    assert "32.34" in shown.output  # the issue event: deposit and first load
    assert " fen" not in shown.output


def test_card_refund_needs_a_reason(embedded: CliRunner) -> None:
    _issue(embedded)
    refused = embedded.invoke(app, ["registry", "card", "refund", CARD, "--yes"])
    assert refused.exit_code == 2 and "--reason" in refused.output


def test_card_refund_without_a_terminal_to_ask_on_needs_yes(embedded: CliRunner) -> None:
    _issue(embedded)
    refused = embedded.invoke(
        app, ["registry", "card", "refund", CARD, "--reason", "moving", "--by", "clerk-17"]
    )
    assert refused.exit_code == 2
    assert "pass --yes" in refused.output
    shown = embedded.invoke(app, ["registry", "card", "show", CARD])
    assert "active" in shown.output and "refunded" not in shown.output


STAFF_PASSWORD = "counter drawer 42 keys"


def _staff(runner: CliRunner, username: str, roles: str) -> None:
    added = runner.invoke(
        app, ["staff", "add", username, "--roles", roles, "--password", STAFF_PASSWORD]
    )
    assert added.exit_code == 0, added.output


def test_card_refund_is_asked_approved_by_another_and_audited(embedded: CliRunner) -> None:
    _issue(embedded)
    _staff(embedded, "clerk-17", "admin")
    _staff(embedded, "fiona", "finance")
    unknown = embedded.invoke(
        app, ["registry", "card", "refund", CARD, "--reason", "x", "--by", "nobody", "--yes"]
    )
    assert unknown.exit_code == 1 and "no staff account 'nobody'" in unknown.output
    asked = embedded.invoke(
        app,
        ["registry", "card", "refund", CARD, "--reason", "resident moved away"]
        + ["--by", "clerk-17", "--yes"],
    )
    assert asked.exit_code == 0, asked.output
    assert "request #1" in asked.output
    assert "refunded" not in embedded.invoke(app, ["registry", "card", "show", CARD]).output
    own = embedded.invoke(app, ["approvals", "approve", "1", "--by", "clerk-17"])
    assert own.exit_code == 1, own.output  # an admin asks; finance decides
    done = embedded.invoke(app, ["approvals", "approve", "1", "--by", "fiona"])
    assert done.exit_code == 0, done.output
    shown = embedded.invoke(app, ["registry", "card", "show", CARD])
    history = [line for line in shown.output.splitlines() if "refunded" in line]
    assert history, shown.output
    assert "finance:fiona" in history[-1] and "32.34" in history[-1]
    flat = " ".join(shown.output.split())  # the reason column folds onto more lines
    assert "approval #1 asked by" in flat and "clerk-17" in flat and "moved away" in flat
    listed = embedded.invoke(app, ["approvals", "list"])
    assert "approved" in listed.output and "clerk-17" in listed.output


def test_statement_of_an_unknown_participant_is_an_error(embedded: CliRunner) -> None:
    result = embedded.invoke(app, ["statement", "bus-404", "--date", "2026-11-28"])
    assert result.exit_code == 1
    assert result.output.strip().endswith("no participant bus-404"), result.output


def test_participant_list_on_the_command_line_shows_the_account_whole(
    embedded: CliRunner,
) -> None:
    added = embedded.invoke(
        app,
        [
            "registry",
            "participant",
            "add",
            "clinic-central",
            "--name",
            "Central Hospital of the City",
            "--kind",
            "clinic",
            "--commission-bp",
            "125",
            "--bank-account",
            "6222020200112233445",
            "--bank-name",
            "Industrial and Commercial Bank of China",
        ],
    )
    assert added.exit_code == 0, added.output
    listed = embedded.invoke(app, ["registry", "participant", "list"])
    assert listed.exit_code == 0, listed.output
    assert "6222020200112233445" in listed.output and "…" not in listed.output, listed.output


def _answer_on_a_terminal(env: dict[str, str], answer: bytes) -> subprocess.CompletedProcess:
    """Run the console script's refund with a real terminal (a pty) on stdin, and answer."""
    leader, follower = os.openpty()
    try:
        os.write(leader, answer)
        done = subprocess.run(
            [ONECARD, "registry", "card", "refund", CARD, "--reason", "moving away"]
            + ["--by", "clerk-17"],
            env=env,
            stdin=follower,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(follower)
        os.close(leader)
    return done


def test_card_refund_asks_on_a_terminal_and_does_nothing_unless_told_yes(
    embedded: CliRunner, tmp_path: Path
) -> None:
    _issue(embedded)
    _staff(embedded, "clerk-17", "admin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONECARD_")}
    env["ONECARD_DATA_DIR"] = str(tmp_path)
    declined = _answer_on_a_terminal(env, b"n\n")
    assert declined.returncode == 1, declined
    assert "refund card 3100000000000001" in declined.stdout
    assert "not confirmed: nothing was done" in declined.stderr
    assert "pending" not in embedded.invoke(app, ["approvals", "list"]).output
    accepted = _answer_on_a_terminal(env, b"y\n")
    assert accepted.returncode == 0, accepted
    assert "pending" in embedded.invoke(app, ["approvals", "list"]).output
