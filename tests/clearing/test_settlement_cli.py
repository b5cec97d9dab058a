"""Finance staff's commands end to end on the embedded database: `onecard clear`,
`onecard quarantine list|show|release|write-off`, `onecard settle`, `onecard statement`,
`onecard subsidies`."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clearing.calendar import BusinessCalendar
from clearing.cli import app
from clearing.engine.synthetic import forged
from clearing.settings import get_settings
from tests.clearing.test_engine import ADULT, SENIOR, build_world


@pytest.fixture
def cli_world(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    async def make():  # type: ignore[no-untyped-def]
        world = await build_world(sqlite_url, tmp_path)
        tapped = datetime.now(UTC) - timedelta(days=2)
        await world.upload(
            [
                world.ride(ADULT, 300, at=tapped, route_id="L7"),
                world.ride(SENIOR, 0, full_fare_fen=200, at=tapped, route_id="L7"),
                forged(world.ride(ADULT, 200, at=tapped)),
            ]
        )
        await world.ledger.close()
        return tapped

    tapped = asyncio.run(make())
    monkeypatch.setenv("ONECARD_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ONECARD_KEY_STORE", str(tmp_path / "keys.json"))
    monkeypatch.setenv("ONECARD_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("ONECARD_SETTLEMENT_DIR", raising=False)
    get_settings.cache_clear()
    yield BusinessCalendar().business_day(tapped), tmp_path
    get_settings.cache_clear()


def test_finance_staff_clear_review_and_settle_a_day(cli_world) -> None:  # type: ignore[no-untyped-def]
    day, home = cli_world
    runner = CliRunner()
    cleared = runner.invoke(app, ["clear"])
    assert cleared.exit_code == 0, cleared.output
    assert "bad_tac" in cleared.output

    listed = runner.invoke(app, ["quarantine", "list"])
    assert listed.exit_code == 0, listed.output
    tap_id = re.search(r"^\s*(\d+)\s+bad tac", listed.output, re.MULTILINE).group(1)
    shown = runner.invoke(app, ["quarantine", "show", tap_id])
    assert "quarantined" in shown.output and "engine" in shown.output
    for name in ("ann", "ben"):
        added = runner.invoke(
            app, ["staff", "add", name, "--roles", "finance", "--password", "two keys, two people"]
        )
        assert added.exit_code == 0, added.output
    refused = runner.invoke(app, ["quarantine", "write-off", tap_id, "--note", " ", "--by", "ann"])
    assert refused.exit_code == 2  # no reason given: used wrongly
    asked = runner.invoke(
        app, ["quarantine", "write-off", tap_id, "--note", "forged, reported", "--by", "ann"]
    )
    assert asked.exit_code == 0, asked.output
    assert "quarantined" in runner.invoke(app, ["quarantine", "show", tap_id]).output
    own = runner.invoke(app, ["approvals", "approve", "1", "--by", "ann"])
    assert own.exit_code == 1 and "another finance officer" in own.output
    done = runner.invoke(app, ["approvals", "approve", "1", "--by", "ben"])
    assert done.exit_code == 0, done.output
    assert "finance:ben" in runner.invoke(app, ["quarantine", "show", tap_id]).output
    again = runner.invoke(app, ["quarantine", "release", tap_id, "--note", "undo"])
    assert again.exit_code == 1 and "not quarantined" in again.output

    settled = runner.invoke(app, ["settle", "--date", day.isoformat()])
    assert settled.exit_code == 0, settled.output
    assert "bus-1" in settled.output and "subsidy:senior" in settled.output
    assert (home / "var" / "settlement" / f"settlement-{day}.pain001.xml").exists()
    twice = runner.invoke(app, ["settle", "--date", day.isoformat()])
    assert "already settled" in twice.output

    statement = runner.invoke(app, ["statement", "bus-1", "--date", day.isoformat()])
    assert statement.exit_code == 0 and "L7" in statement.output
    subsidies = runner.invoke(app, ["subsidies", "--from", day.isoformat()])
    assert subsidies.exit_code == 0 and "senior" in subsidies.output and "2.00" in subsidies.output

    today = BusinessCalendar().business_day(datetime.now(UTC))
    too_early = runner.invoke(app, ["settle", "--date", today.isoformat()])
    assert too_early.exit_code == 1 and "cut-off" in too_early.output


def test_tasks_run_in_process_without_a_broker(cli_world) -> None:  # type: ignore[no-untyped-def]
    from clearing.celery_app import make_celery, settlement_crontab
    from clearing.engine.tasks import clear_staged
    from clearing.settings import Settings
    from clearing.settlement.tasks import settle_task

    embedded = make_celery(Settings(celery_broker_url=""))
    assert embedded.conf.task_always_eager and embedded.conf.task_acks_late
    brokered = make_celery(Settings(celery_broker_url="amqp://guest:guest@127.0.0.1:5672//"))
    assert not brokered.conf.task_always_eager
    assert {"clear-staged-taps", "settle-closed-day"} <= set(brokered.conf.beat_schedule)
    cron = settlement_crontab(Settings(settlement_cutoff="04:00"))
    assert (cron.hour, cron.minute) == ({20}, {10})  # 04:10 Asia/Shanghai is 20:10 UTC

    day, _home = cli_world
    first = clear_staged.apply(kwargs={"trigger": "test"}).get()
    assert (first["posted"], first["quarantined"]) == (2, 1)
    second = clear_staged.apply(kwargs={"trigger": "test"}).get()
    assert second["records_seen"] == 0  # idempotent: nothing left, nothing posted twice
    settled = settle_task.apply(kwargs={"business_day": day.isoformat()}).get()
    assert settled["participants"] == 1 and not settled["already_settled"]
    again = settle_task.apply(kwargs={"business_day": day.isoformat()}).get()
    assert again["already_settled"] and again["net_fen"] == settled["net_fen"]
