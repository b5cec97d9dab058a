"""The city demo, small: cards, a fleet day with offline buses, a clinic, planted forgeries and
duplicates, clearing and settlement on the embedded default (SQLite, eager Celery)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from xml.etree import ElementTree

import pytest
from rich.console import Console
from sqlalchemy import func, select
from typer.testing import CliRunner

from clearing.cli import app
from clearing.settings import get_settings
from clearing.settlement.files import check_pain001
from ledger.check import check_ledger
from ledger.writer import Ledger

pytestmark = pytest.mark.slow


@pytest.fixture
def demo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in (
        "ONECARD_DATABASE_URL",
        "ONECARD_CELERY_BROKER_URL",
        "ONECARD_KEY_STORE",
        "ONECARD_SETTLEMENT_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ONECARD_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield tmp_path / "var" / "demo"
    get_settings.cache_clear()
    from clearing.celery_app import app as celery_app

    celery_app.conf.task_always_eager = get_settings().celery_eager


async def _books_and_records(url: str) -> tuple[bool, dict[str, int], int]:
    from clearing.engine.models import TapDisposition
    from clearing.ingest.models import TapRecord

    async with await Ledger.open(url) as ledger, ledger.engine.connect() as conn:
        report = await check_ledger(conn)
        rows = await conn.execute(
            select(TapRecord.quarantine_reason, func.count())
            .where(TapRecord.state == "quarantined")
            .group_by(TapRecord.quarantine_reason)
        )
        reasons = {r[0]: r[1] for r in rows}
        duplicates = (
            await conn.execute(select(func.count()).select_from(TapDisposition))
        ).scalar_one()
    return report.ok, reasons, duplicates


def test_the_city_demo_clears_and_settles_a_day(demo_home: Path, localstripe: str) -> None:
    from clearing.cli.city_demo import print_city_report, run_city_demo

    console = Console(width=120, record=True)
    report = run_city_demo(console, cards=80, buses=3, visits=4)
    print_city_report(console, report)
    assert report.taps > 0 and report.paid == report.taps
    assert report.offline_periods > 0
    assert report.visits_paid >= 1
    topups = report.topups  # residents sign up, link their card and top it up on the phone
    assert topups.stripe and topups.asked == topups.paid == 20 and not topups.refused
    clearing = report.clearing
    assert clearing["duplicates"] == report.planted_duplicates == 5
    assert clearing["quarantined"] == report.planted_forged == 3
    bills = report.bills  # paid by card at the water company's counter, told to the billers
    assert bills.paid == bills.acknowledged > 0 and not bills.refused
    assert clearing["posted"] == report.paid + report.visits_paid + bills.paid
    settled = report.settlement
    assert not settled["already_settled"]
    xml = Path(settled["xml"])
    assert check_pain001(xml.read_bytes()) == []
    # the bank file pays from the escrow account, never into it
    message = ElementTree.fromstring(xml.read_bytes())
    debtor = {e.text for e in message.iterfind(".//{*}DbtrAcct/{*}Id/{*}Othr/{*}Id")}
    creditors = {e.text for e in message.iterfind(".//{*}CdtrAcct/{*}Id/{*}Othr/{*}Id")}
    assert len(debtor) == 1 and creditors and not debtor & creditors
    assert Path(settled["csv"]).read_text().count("\n") == 1 + settled["participants"]
    ok, reasons, duplicates = asyncio.run(
        _books_and_records(get_settings().resolved_database_url())
    )
    assert ok, "the ledger checker found a break"
    assert reasons == {"bad_tac": 3}
    assert duplicates == 5
    text = console.export_text()
    # the report names the bank file by its path, which the console folds at 120 columns where
    # it falls (the test's temporary folder is longer under pytest-xdist)
    assert "bad_tac" in text and "pain001.xml" in text.replace("\n", "")
    assert "city-water" in Path(settled["csv"]).read_text()  # the billers settle like operators
    assert "bills paid by card" in text


def test_onecard_demo_runs_small(demo_home: Path, localstripe: str) -> None:
    """The demo tops cards up through Stripe: this session's localstripe (not one another test
    happened to start before)."""
    result = CliRunner().invoke(app, ["demo", "--cards", "40", "--buses", "2", "--visits", "2"])
    assert result.exit_code == 0, result.output
    assert "settlement" in result.output
    assert (demo_home / "settlement").is_dir()
