"""Writing a reconciliation break off needs a second finance officer, as a quarantine write-off
does: the direct path (API, `onecard breaks write-off`) only asks; the break is closed as
written off when another officer approves the request, once; the one who asked never decides."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from clearing.auth.models import Role
from clearing.cli.server import app as onecard
from clearing.registry import service as registry_service
from clearing.settings import Settings
from clearing.staff import service as staff
from tests.clearing.apiharness import running_app
from tests.clearing.test_engine import World
from tests.reconciliation.test_breaks_workflow import by_kind, cli_env, seed_clone_and_forgery

__all__ = ["cli_env"]

B = "/v1/reconciliation"
PASSWORD = "two keys, two people"


async def _staff(world: World, tmp_path: Path) -> None:
    """ann and ben (finance)."""
    settings = Settings(database_url=world.url, data_dir=tmp_path)
    async with world.ledger.transaction() as conn:
        session = AsyncSession(bind=conn)
        for name in ("ann", "ben"):
            await staff.add_staff(session, settings, name, PASSWORD, frozenset({Role.FINANCE}))
        await session.close()


async def test_a_break_is_written_off_only_when_a_second_officer_approves(
    world: World, tmp_path: Path
) -> None:
    await seed_clone_and_forgery(world)
    await _staff(world, tmp_path)
    async with running_app(world.url, tmp_path) as (app, client):
        async with app.state.sessionmaker() as session:
            auth: dict[str, dict[str, str]] = {}
            for name in ("ann", "ben"):
                token, _ = await registry_service.issue_token(
                    session, Role.FINANCE, subject=name, label="t"
                )
                auth[name] = {"Authorization": f"Bearer {token}"}
            await session.commit()
        ann, ben = auth["ann"], auth["ben"]
        forgery = by_kind((await client.get(f"{B}/breaks", headers=ann)).json())["tap_forged"]

        direct = await client.post(
            f"{B}/breaks/{forgery['id']}/write-off", headers=ann, json={"note": "x"}
        )
        assert direct.status_code == 409
        assert direct.headers["content-type"].startswith("application/problem+json")
        assert direct.json()["code"] == "second_person_required"
        assert '"kind": "break_write_off"' in direct.json()["detail"]
        shown = await client.get(f"{B}/breaks/{forgery['id']}", headers=ann)
        assert shown.json()["status"] == "open"  # nothing was written off

        body = {"kind": "break_write_off", "target": str(forgery["id"]), "reason": "¥0.05 typo"}
        missing = await client.post("/v1/approvals", headers=ann, json={**body, "target": "999999"})
        assert missing.status_code == 404 and missing.json()["code"] == "break_not_found"
        asked = await client.post("/v1/approvals", headers=ann, json=body)
        assert asked.status_code == 201, asked.text
        request_id = asked.json()["id"]
        twice = await client.post("/v1/approvals", headers=ben, json=body)
        assert twice.status_code == 409 and twice.json()["code"] == "approval_already_requested"
        own = await client.post(f"/v1/approvals/{request_id}/approve", headers=ann, json={})
        assert own.status_code == 403 and own.json()["code"] == "requester_cannot_decide"
        shown = await client.get(f"{B}/breaks/{forgery['id']}", headers=ann)
        assert shown.json()["status"] == "open"

        approved = await client.post(
            f"/v1/approvals/{request_id}/approve", headers=ben, json={"note": "agreed"}
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["outcome"] == f"reconciliation break {forgery['id']} written off"
        detail = (await client.get(f"{B}/breaks/{forgery['id']}", headers=ann)).json()
        assert detail["status"] == "written_off"
        last = detail["history"][-1]
        assert (last["action"], last["actor"]) == ("written_off", "finance:ben")
        assert f"approval #{request_id} asked by ann: ¥0.05 typo" in last["note"]
        again = await client.post(f"/v1/approvals/{request_id}/approve", headers=ben, json={})
        assert again.status_code == 200  # the same officer again: nothing more happens
        history = (await client.get(f"{B}/breaks/{forgery['id']}", headers=ann)).json()["history"]
        assert [e["action"] for e in history].count("written_off") == 1
        closed = await client.post("/v1/approvals", headers=ann, json=body)
        assert closed.status_code == 409 and closed.json()["code"] == "break_closed"


async def test_onecard_breaks_write_off_asks_and_approvals_approve_writes_it_off(
    world: World, cli_env: Any, tmp_path: Path
) -> None:
    await seed_clone_and_forgery(world)
    await _staff(world, tmp_path)
    cli = CliRunner()

    async def run(args: list[str]) -> Any:  # the command runs its own event loop: a thread
        return await asyncio.to_thread(cli.invoke, onecard, args)

    without_by = await run(["breaks", "write-off", "2", "--note", "typo"])
    assert without_by.exit_code == 2 and "--by" in without_by.output
    asked = await run(["breaks", "write-off", "2", "--note", "a typo", "--by", "ann"])
    assert asked.exit_code == 0, asked.output
    assert "break write off of 2 asked as request #1" in asked.output
    assert "onecard approvals approve 1 --by" in asked.output
    shown = await run(["breaks", "show", "2"])
    assert "written_off" not in shown.output and " · open · " in shown.output

    own = await run(["approvals", "approve", "1", "--by", "ann"])
    assert own.exit_code == 1 and "another finance officer" in own.output
    listed = await run(["approvals", "list", "--state", "pending"])
    assert "break_write_off" in listed.output
    done = await run(["approvals", "approve", "1", "--by", "ben"])
    assert done.exit_code == 0, done.output
    assert "reconciliation break 2 written off" in done.output
    shown = await run(["breaks", "show", "2"])
    assert " · written_off · " in shown.output and "finance:ben" in shown.output
    closed = await run(["breaks", "write-off", "2", "--note", "again", "--by", "ann"])
    assert closed.exit_code == 1 and "break_closed" in closed.output
