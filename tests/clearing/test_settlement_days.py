"""Which days may be settled: never one that has not begun (it would make every real day "late"
and leave operators unpaid), and `onecard settle` without a date says which day it settled."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from clearing.auth.models import Role
from clearing.calendar import BusinessCalendar
from clearing.cli import app
from clearing.registry import service as registry_service
from clearing.settings import get_settings
from clearing.settlement.models import SettlementRun
from clearing.settlement.service import (
    FutureSettlementMovedMoney,
    SettledOutOfOrder,
    settle_day,
    undo_future_settlements,
)
from tests.clearing.apiharness import running_app
from tests.clearing.test_engine import ADULT, World, engine_pg_url, world, world_url

__all__ = ["engine_pg_url", "world", "world_url"]


@pytest.fixture
def fresh_install(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    monkeypatch.setenv("ONECARD_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ONECARD_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("ONECARD_SETTLEMENT_DIR", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_a_future_day_is_refused_and_real_days_still_settle(fresh_install: Path) -> None:
    runner = CliRunner()
    future = runner.invoke(app, ["settle", "--date", "2030-01-01", "--force"])
    assert future.exit_code == 1, future.output
    assert "2030-01-01 has not begun" in future.output
    assert "Traceback" not in future.output
    assert not (fresh_install / "var" / "settlement" / "settlement-2030-01-01.csv").exists()

    today = BusinessCalendar().business_day(datetime.now(UTC))
    tomorrow = runner.invoke(app, ["settle", "--date", str(today + timedelta(days=1)), "--force"])
    assert tomorrow.exit_code == 1 and "has not begun" in tomorrow.output

    earlier = today - timedelta(days=3)
    settled = runner.invoke(app, ["settle", "--date", str(earlier)])
    assert settled.exit_code == 0, settled.output
    assert f"settlement {earlier}" in settled.output


def test_settle_without_a_date_says_which_day_it_settled_at_zero(fresh_install: Path) -> None:
    runner = CliRunner()
    yesterday = BusinessCalendar().last_closed_day(datetime.now(UTC))
    settled = runner.invoke(app, ["settle"])
    assert settled.exit_code == 0, settled.output
    flat = " ".join(settled.output.split())
    assert f"no --date given: business day {yesterday}, the last closed day" in flat
    assert f"nothing was cleared for {yesterday}: it is now settled at zero" in flat
    again = runner.invoke(app, ["settle"])
    assert "it was settled at zero" in " ".join(again.output.split())


def test_closing_the_current_day_early_needs_a_second_officer(fresh_install: Path) -> None:
    runner = CliRunner()
    today = BusinessCalendar().business_day(datetime.now(UTC))
    alone = runner.invoke(app, ["settle", "--date", str(today), "--force"])
    said = " ".join(alone.output.replace("│", " ").split())
    assert alone.exit_code == 2 and "needs a second finance officer" in said, said
    for name in ("ann", "ben"):
        added = runner.invoke(
            app, ["staff", "add", name, "--roles", "finance", "--password", "two keys, two people"]
        )
        assert added.exit_code == 0, added.output
    asked = runner.invoke(
        app, ["settle", "--date", str(today), "--force", "--by", "ann", "--reason", "audit"]
    )
    assert asked.exit_code == 0, asked.output
    assert "request #1" in asked.output
    assert not (fresh_install / "var" / "settlement" / f"settlement-{today}.csv").exists()
    approved = runner.invoke(app, ["approvals", "approve", "1", "--by", "ben"])
    assert approved.exit_code == 0, approved.output
    assert f"business day {today} settled early" in " ".join(approved.output.split())
    assert (fresh_install / "var" / "settlement" / f"settlement-{today}.csv").exists()


async def test_the_api_refuses_a_future_day_with_a_problem(sqlite_url: str, tmp_path: Path) -> None:
    async with running_app(sqlite_url, tmp_path) as (app_, client):
        async with app_.state.sessionmaker() as session:
            token, _ = await registry_service.issue_token(
                session, Role.FINANCE, subject="f", label="t"
            )
            await session.commit()
        headers = {"Authorization": f"Bearer {token}"}
        future = await client.post(
            "/v1/settlements/2030-01-01", params={"force": "true"}, headers=headers
        )
        assert future.status_code == 422, future.text
        assert future.headers["content-type"].startswith("application/problem+json")
        assert future.json()["code"] == "business_day_in_future"
        assert "has not begun" in future.json()["detail"]
        assert (await client.get("/v1/settlements/2030-01-01", headers=headers)).status_code == 404
        real = BusinessCalendar().last_closed_day(datetime.now(UTC))
        settled = await client.post(f"/v1/settlements/{real}", headers=headers)
        assert settled.status_code == 200, settled.text


async def test_an_install_with_a_settled_future_day_can_be_repaired(world: World) -> None:
    """What the old code allowed: 2030-01-01 settled early. Every real day was then refused as
    out of order and new records went to 2030-01-02; undoing the empty future run gives them
    back to their day, which then settles and pays the operator."""
    calendar = BusinessCalendar(ZoneInfo("Asia/Shanghai"), time(4, 0))
    now = datetime.now(UTC)
    tapped = now - timedelta(days=2)
    day = calendar.business_day(tapped)
    future = date(2030, 1, 1)
    async with world.ledger.transaction() as conn:
        await conn.execute(
            insert(SettlementRun.__table__).values(
                business_day=future, state="posted", cutoff_at=calendar.day_end(future),
                actor="t", created_at=now, message_id="OLD-FUTURE", participants=0, taps=0,
                gross_fen=0, commission_fen=0, net_fen=0,
            )
        )  # fmt: skip
    await world.upload([world.ride(ADULT, 300, at=tapped)])
    await world.engine.clear_pending()
    async with world.ledger.transaction() as conn:
        with pytest.raises(SettledOutOfOrder, match="onecard settle --undo-future"):
            await settle_day(conn, world.ledger, day, calendar=calendar, now=now, actor="t")
    async with world.ledger.transaction() as conn:
        undone = await undo_future_settlements(conn, calendar=calendar, now=now)
    assert undone.days == (future,) and undone.records_moved == 1
    async with world.ledger.transaction() as conn:
        again = await undo_future_settlements(conn, calendar=calendar, now=now)
        settled = await settle_day(conn, world.ledger, day, calendar=calendar, now=now, actor="t")
    assert again.days == ()
    assert [(line.participant_code, line.fares_fen) for line in settled.lines] == [("bus-1", 300)]


async def test_a_future_settlement_that_paid_someone_is_not_undone(world: World) -> None:
    calendar = BusinessCalendar(ZoneInfo("Asia/Shanghai"), time(4, 0))
    now = datetime.now(UTC)
    future = date(2030, 1, 2)
    async with world.ledger.transaction() as conn:
        await conn.execute(
            insert(SettlementRun.__table__).values(
                business_day=future, state="posted", cutoff_at=calendar.day_end(future),
                actor="t", created_at=now, message_id="OLD-PAID", participants=1, taps=1,
                gross_fen=300, commission_fen=2, net_fen=298,
            )
        )  # fmt: skip
    async with world.ledger.transaction() as conn:
        with pytest.raises(FutureSettlementMovedMoney, match="2030-01-02"):
            await undo_future_settlements(conn, calendar=calendar, now=now)


def test_settle_undo_future_says_there_is_nothing_to_undo(fresh_install: Path) -> None:
    result = CliRunner().invoke(app, ["settle", "--undo-future"])
    assert result.exit_code == 0, result.output
    assert "nothing to undo" in result.output
