"""Which days may be settled: never one that has not begun (it would make every real day "late"
and leave operators unpaid), and `onecard settle` without a date says which day it settled."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clearing.auth import service as auth_service
from clearing.auth.models import Role
from clearing.cli import app
from clearing.settings import get_settings
from clearing.settlement.days import BusinessCalendar
from tests.clearing.apiharness import running_app


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


def test_closing_the_current_day_early_is_allowed(fresh_install: Path) -> None:
    today = BusinessCalendar().business_day(datetime.now(UTC))
    closed = CliRunner().invoke(app, ["settle", "--date", str(today), "--force"])
    assert closed.exit_code == 0, closed.output


async def test_the_api_refuses_a_future_day_with_a_problem(sqlite_url: str, tmp_path: Path) -> None:
    async with running_app(sqlite_url, tmp_path) as (app_, client):
        async with app_.state.sessionmaker() as session:
            token, _ = await auth_service.issue_token(session, Role.FINANCE, subject="f", label="t")
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
