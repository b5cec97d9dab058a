"""The planner's ways in: `onecard insight ...` and the /v1/insight API (planner role)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clearing.auth.models import Role
from clearing.cli import app as onecard
from clearing.registry import service as registry_service
from clearing.settings import get_settings
from insight import synthetic
from tests.clearing.apiharness import running_app
from tests.insight.cityfixture import reset

pytestmark = pytest.mark.postgres

START = date(2026, 3, 2)
DAYS = 21
END = START + timedelta(days=DAYS - 1)


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """The CLI reads ONECARD_DATABASE_URL through a cached get_settings: each test sets its own."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def _load(pg_url: str) -> set[str]:
    connection = await reset(pg_url)
    taps, _ = synthetic.month(300, START, DAYS, seed=5)
    await synthetic.load_taps(connection, taps)
    await connection.close()
    return {tap.card_no for tap in taps}


async def _clean(pg_url: str) -> None:
    connection = await reset(pg_url)
    await connection.close()


@pytest.fixture
def cli_city(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    cards = asyncio.run(_load(pg_url))
    monkeypatch.setenv("ONECARD_DATABASE_URL", pg_url)
    monkeypatch.setenv("ONECARD_INSIGHT_EPSILON_PER_DAY_MAX", "1")
    yield cards
    asyncio.run(_clean(pg_url))


def test_cli_release_writes_csv_and_report_then_refuses_to_overspend(
    cli_city: set[str], tmp_path: Path
) -> None:
    runner = CliRunner()
    args = ["insight", "release", "--from", str(START), "--to", str(END), "--out", str(tmp_path)]
    done = runner.invoke(onecard, args)
    assert done.exit_code == 0, done.output
    assert (tmp_path / "report.html").exists() and (tmp_path / "od.csv").exists()
    text = "".join(p.read_text() for p in tmp_path.iterdir())
    assert not cli_city & set(re.findall(r"\d{16}", text))
    again = runner.invoke(onecard, args)
    assert again.exit_code == 1
    assert "privacy budget" in again.output or "would pass the cap" in again.output
    assert "Traceback" not in again.output
    listed = runner.invoke(onecard, ["insight", "releases"])
    assert listed.exit_code == 0 and str(START) in listed.output
    release_id = re.search(r"release ([0-9a-f-]{36})", done.output)
    assert release_id is not None
    exported = runner.invoke(
        onecard, ["insight", "export", release_id.group(1), "--out", str(tmp_path / "again")]
    )
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "again" / "od.csv").read_text() == (tmp_path / "od.csv").read_text()


def test_cli_refuses_a_bad_date_as_usage(cli_city: set[str], tmp_path: Path) -> None:
    done = CliRunner().invoke(
        onecard, ["insight", "release", "--from", "2026-13-01", "--to", str(END), "--out", "x"]
    )
    assert done.exit_code == 2
    assert "Traceback" not in done.output


@pytest.fixture
async def api_city(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[set[str]]:
    cards = await _load(pg_url)
    monkeypatch.setenv("ONECARD_INSIGHT_EPSILON_PER_DAY_MAX", "1")
    yield cards
    await _clean(pg_url)


async def test_a_planner_makes_and_reads_releases_over_the_api(
    api_city: set[str], pg_url: str, tmp_path: Path
) -> None:
    async with running_app(pg_url, tmp_path) as (app, client):
        async with app.state.sessionmaker() as session:
            planner, _ = await registry_service.issue_token(
                session, Role.PLANNER, subject=None, label="p"
            )
            finance, _ = await registry_service.issue_token(
                session, Role.FINANCE, subject=None, label="f"
            )
            await session.commit()
        as_planner = {"Authorization": f"Bearer {planner}"}
        body = {"period_start": str(START), "period_end": str(END)}
        refused = await client.post(
            "/v1/insight/releases", json=body, headers={"Authorization": f"Bearer {finance}"}
        )
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("application/problem+json")

        made = await client.post("/v1/insight/releases", json=body, headers=as_planner)
        assert made.status_code == 201, made.text
        release = made.json()
        assert set(release["tables"]) >= {"line_day", "od", "transfers", "stop_hour"}
        assert release["destination_inferred_share"] > 0.5
        assert not api_city & set(re.findall(r"\d{16}", made.text))

        again = await client.post("/v1/insight/releases", json=body, headers=as_planner)
        assert again.status_code == 409
        assert again.json()["code"] == "privacy_budget_exhausted"

        listed = await client.get("/v1/insight/releases", headers=as_planner)
        assert [r["id"] for r in listed.json()] == [release["id"]]
        read = await client.get(f"/v1/insight/releases/{release['id']}", headers=as_planner)
        assert read.json()["tables"] == release["tables"]
        csv = await client.get(
            f"/v1/insight/releases/{release['id']}/tables/od.csv", headers=as_planner
        )
        assert csv.status_code == 200 and csv.text.startswith("origin_stop_id,")
        page = await client.get(
            f"/v1/insight/releases/{release['id']}/report.html", headers=as_planner
        )
        assert page.status_code == 200 and "<svg" in page.text
        missing = await client.get(
            "/v1/insight/releases/00000000-0000-0000-0000-000000000000", headers=as_planner
        )
        assert missing.status_code == 404
        assert missing.json()["code"] == "release_not_found"


def test_cli_loads_a_synthetic_month_to_try_insight_on(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_clean(pg_url))
    monkeypatch.setenv("ONECARD_DATABASE_URL", pg_url)
    try:
        done = CliRunner().invoke(
            onecard,
            ["insight", "synthetic", "--from", "2026-05-04", "--riders", "40", "--days", "7"],
        )
        assert done.exit_code == 0, done.output
        assert "loaded" in done.output and "40 riders" in done.output
    finally:
        asyncio.run(_clean(pg_url))


def test_cli_on_embedded_sqlite_says_insight_needs_postgresql(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ONECARD_DATABASE_URL", sqlite_url)
    done = CliRunner().invoke(
        onecard,
        [
            "insight",
            "release",
            "--from",
            "2026-05-04",
            "--to",
            "2026-05-10",
            "--out",
            str(tmp_path),
        ],
    )
    assert done.exit_code == 1
    assert "PostgreSQL" in done.output and "Traceback" not in done.output


def test_cli_names_a_bad_insight_setting_in_one_line(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ONECARD_DATABASE_URL", pg_url)
    monkeypatch.setenv("ONECARD_INSIGHT_K_RIDERS_MIN", "1")
    done = CliRunner().invoke(
        onecard,
        [
            "insight",
            "release",
            "--from",
            "2026-05-04",
            "--to",
            "2026-05-10",
            "--out",
            str(tmp_path),
        ],
    )
    assert done.exit_code == 1
    assert "ONECARD_INSIGHT_K_RIDERS_MIN" in done.output and "Traceback" not in done.output
