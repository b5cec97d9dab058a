"""The breaks workflow over the API and the command line: finance staff (and only they; admins may read) assign,
explain, resolve and write off breaks, each step in the break's history; a suspected clone is
confirmed onto the deny list through clearing's card blocking; a re-run keeps what they did."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from clearing.auth.models import Role
from clearing.cli.server import app as onecard
from clearing.engine.synthetic import SyntheticCard, forged
from clearing.registry import service as registry_service
from clearing.settings import get_settings
from tests.clearing.apiharness import running_app
from tests.clearing.test_engine import World
from tests.reconciliation.conftest import CALENDAR, past_day, reconcile
from tests.reconciliation.test_seeded_day import ADULT, CLONED, Clock, clear

B = "/v1/reconciliation"


async def seed_clone_and_forgery(world: World) -> None:
    day = past_day(1)
    tick = Clock(CALENDAR.day_start(day) + __import__("datetime").timedelta(hours=3))
    first = [world.ride(ADULT, 200, at=tick()), world.ride(CLONED, 200, at=tick())]
    await clear(world, first, "b1")
    card = world.cards[CLONED]
    copy = SyntheticCard(CLONED, card.balance_fen, "adult", card.offline_counter)
    await clear(world, [world.ride(CLONED, 100, at=tick())], "b2")
    world.cards[CLONED] = copy
    await clear(world, [world.ride(CLONED, 400, at=tick())], "b3")
    world.cards[CLONED] = card
    await clear(world, [forged(first[0], amount_fen=5)], "b4")
    summary = await reconcile(world, day)
    assert summary.found == 2


async def tokens(app: Any) -> dict[str, dict[str, str]]:
    out = {}
    async with app.state.sessionmaker() as session:
        for role, subject in (
            (Role.FINANCE, "fred"),
            (Role.ADMIN, "alice"),
            (Role.OPERATOR, "bus-1"),
            (Role.RESIDENT, "resident-0"),
        ):
            token, _ = await registry_service.issue_token(session, role, subject=subject, label="t")
            out[role.value] = {"Authorization": f"Bearer {token}"}
        await session.commit()
    return out


def by_kind(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["kind"]: r for r in rows}


async def test_finance_works_breaks_through_the_api_and_only_finance(
    world: World, tmp_path: Path
) -> None:
    await seed_clone_and_forgery(world)
    async with running_app(world.url, tmp_path) as (app, client):
        auth = await tokens(app)
        for role in ("operator", "resident"):
            refused = await client.get(f"{B}/breaks", headers=auth[role])
            assert refused.status_code == 403, role
            assert refused.headers["content-type"].startswith("application/problem+json")
        assert (await client.get(f"{B}/breaks", headers=auth["admin"])).status_code == 200
        assert (await client.get(f"{B}/breaks")).status_code == 401
        fin = auth["finance"]
        rows = by_kind((await client.get(f"{B}/breaks", headers=fin)).json())
        assert set(rows) == {"card_clone_suspected", "tap_forged"}
        clone, forgery = rows["card_clone_suspected"]["id"], rows["tap_forged"]["id"]
        assert rows["card_clone_suspected"]["details"]["proposal"] == "deny"

        for path, body in (
            (f"{B}/breaks/{forgery}/assign", {"assignee": "wang"}),
            (f"{B}/breaks/{forgery}/explain", {"note": "a terminal's memory corrupted it"}),
        ):
            assert (await client.post(path, headers=fin, json=body)).status_code == 200
        resolved = await client.post(
            f"{B}/breaks/{forgery}/resolve", headers=fin, json={"note": "written off in quarantine"}
        )
        assert resolved.status_code == 200
        detail = resolved.json()
        assert detail["status"] == "resolved" and detail["assignee"] == "wang"
        assert [(e["action"], e["actor"]) for e in detail["history"]] == [
            ("found", "reconciliation"),
            ("assigned", "finance:fred"),
            ("explained", "finance:fred"),
            ("resolved", "finance:fred"),
        ]
        again = await client.post(
            f"{B}/breaks/{forgery}/write-off", headers=fin, json={"note": "x"}
        )
        # a write-off asks a second officer (tests/reconciliation/test_break_write_off_approval)
        assert again.status_code == 409 and again.json()["code"] == "second_person_required"
        for body in ({}, {"note": ""}, {"note": "ok", "extra": 1}, {"note": 5}):
            bad = await client.post(f"{B}/breaks/{clone}/explain", headers=fin, json=body)
            assert bad.status_code == 422, body
        assert (await client.get(f"{B}/breaks/999999", headers=fin)).status_code == 404
        for day in ("0", "2026-02-30", "2101-01-01"):
            bad_day = await client.get(f"{B}/breaks", headers=fin, params={"business_day": day})
            assert bad_day.status_code == 422, day
        assert (
            await client.post(
                f"{B}/breaks/{clone}/assign", headers=auth["admin"], json={"assignee": "x"}
            )
        ).status_code == 403

        denied = await client.post(
            f"{B}/breaks/{clone}/deny-card", headers=fin, json={"note": "two cards, one number"}
        )
        assert denied.status_code == 200, denied.text
        assert denied.json()["deny_list_version"] >= 1
        assert denied.json()["history"][-1]["action"] == "card_denied"
        card = await client.get(f"/v1/cards/{CLONED}", headers=auth["admin"])
        assert card.json()["card"]["status"] == "blocked"
        not_a_clone = await client.post(
            f"{B}/breaks/{forgery}/deny-card", headers=fin, json={"note": "x"}
        )
        assert not_a_clone.status_code == 409

        runs = (await client.get(f"{B}/runs", headers=fin)).json()
        assert {c["check"] for c in runs[0]["checks"]} == {
            "ledger",
            "terminals",
            "cards",
            "stripe",
            "bank",
            "billers",
            "funds",
            "escrow_balance",
        }
        assert all(0 <= c["match_rate"] <= 1 for c in runs[0]["checks"])
        await check_report(client, fin, runs[0]["business_day"])

    await reconcile(world, past_day(1))  # a re-run keeps what finance did
    async with running_app(world.url, tmp_path) as (app, client):
        fin = (await tokens(app))["finance"]
        rows = by_kind(
            (await client.get(f"{B}/breaks", headers=fin, params={"status": "resolved"})).json()
        )
        assert rows["tap_forged"]["status"] == "resolved"


async def check_report(client: httpx.AsyncClient, fin: dict[str, str], day: str) -> None:
    page = await client.get(f"{B}/reports/{day}/report.html", headers=fin)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert text.count("<svg") == 5 and "card_clone_suspected" in text
    assert "Ledger entries read: every one up to" in text  # the run's ledger window
    for outside in ("<script", "<link", "src=", "href=", "@import", "url("):
        assert outside not in text, outside
    csv = await client.get(f"{B}/reports/{day}/breaks.csv", headers=fin)
    assert csv.status_code == 200 and csv.text.startswith("id,kind,key,status,amount_fen")
    assert (await client.get(f"{B}/reports/{day}/nope.csv", headers=fin)).status_code == 422


@pytest.fixture
def cli_env(world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("ONECARD_DATABASE_URL", world.url)
    monkeypatch.setenv("ONECARD_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_breaks_on_the_command_line(world: World, cli_env: Any, tmp_path: Path) -> None:
    await seed_clone_and_forgery(world)
    cli = CliRunner()

    async def run(args: list[str]) -> Any:  # the command runs its own event loop: a thread
        return await asyncio.to_thread(cli.invoke, onecard, args)

    listed = await run(["breaks", "list", "--kind", "tap_forged"])
    assert listed.exit_code == 0, listed.output
    assert "tap_forged" in listed.output and "card_clone" not in listed.output
    done = await run(["breaks", "assign", "2", "--to", "li", "--by", "fred"])
    assert done.exit_code == 0, done.output
    done = await run(["breaks", "resolve", "2", "--note", "fixed", "--by", "fred"])
    assert done.exit_code == 0 and "resolved" in done.output
    shown = await run(["breaks", "show", "2"])
    assert "assigned" in shown.output and "fred" in shown.output
    for args, code, said in (
        (["breaks", "resolve", "2", "--note", "again"], 1, "break_closed"),
        (["breaks", "show", "99999"], 1, "break_not_found"),
        (["breaks", "explain", "1", "--note", "  "], 2, "break_note_invalid"),
        (["reconcile", "--date", "1999-12-31"], 2, "business days run from"),
        (["reconcile", "--date", "soon"], 2, "not a date"),
    ):
        result = await run(args)
        assert result.exit_code == code, (args, result.output)
        assert said in result.output and "Traceback" not in result.output, result.output
    report_dir = tmp_path / "report"
    day = past_day(1).isoformat()
    made = await run(["reconcile", "--date", day, "--report", str(report_dir), "--all-accounts"])
    assert made.exit_code == 0, made.output
    # The ledger time its ledger check read (a re-run of the day's first run, which read
    # every entry), and every account checked against its last entry, as asked.
    assert "ledger entries read: every one up to" in made.output
    assert "every account checked against its last entry" in made.output
    assert sorted(p.name.split("-")[0] for p in report_dir.iterdir()) == [
        "breaks",
        "matches",
        "report",
        "trend",
    ]
