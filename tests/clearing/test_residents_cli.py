"""`onecard residents ...` as counter staff use it, on the embedded SQLite default: list, show
a resident's linked cards, release a card from whoever linked it; refusals are one line."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from clearing.cli import app
from clearing.cli.registry_cmd import _in_transaction
from clearing.residents import service, signin
from clearing.residents.rules import ProofKind
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


def in_transaction(work):  # type: ignore[no-untyped-def]
    settings = get_settings()
    return asyncio.run(_in_transaction(settings.resolved_database_url(), work, with_ledger=True))


def test_staff_list_show_and_release_a_linked_card(embedded) -> None:
    runner = embedded
    card_no = "3100000000000042"
    issued = runner.invoke(
        app,
        ["registry", "card", "issue", card_no, "--holder-id", "walk-in", "--holder-name", "Li"]
        + ["--first-load-fen", "3000"],
    )
    assert issued.exit_code == 0, issued.output
    settings = get_settings()

    async def sign_up_and_link(session, ledger):  # type: ignore[no-untyped-def]
        resident = await signin.sign_up(session, settings, "13800138000", "a long password", "Li")
        await service.link_card(
            session, settings, ledger, resident.id, card_no, (ProofKind.BALANCE, 3000), "mine"
        )
        return resident.id

    resident_id = in_transaction(sign_up_and_link)
    listed = runner.invoke(app, ["residents", "list"])
    assert (
        listed.exit_code == 0 and resident_id in listed.output and "+8613800138000" in listed.output
    )
    shown = runner.invoke(app, ["residents", "show", "13800138000"])
    assert shown.exit_code == 0, shown.output
    assert card_no in shown.output and "30.00" in shown.output
    released = runner.invoke(app, ["residents", "release-card", card_no])
    assert released.exit_code == 0 and resident_id in released.output
    again = runner.invoke(app, ["residents", "release-card", card_no])
    assert again.exit_code == 1
    assert again.output.strip().count("\n") == 0 and "not linked" in again.output
    unknown = runner.invoke(app, ["residents", "show", "nobody@example.cn"])
    assert unknown.exit_code == 1 and "give a resident id" in unknown.output
