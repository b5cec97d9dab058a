"""Second-person approval: a write-off, a refund or an early settlement is asked by one finance
officer and carried out only when another approves it; the one who asks never decides; an
approval carries the action out once; a rejection carries nothing out and says why."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from clearing import books
from clearing.approvals import service
from clearing.approvals.models import ApprovalKind, ApprovalState
from clearing.auth.models import Role
from clearing.auth.service import Principal
from clearing.db.base import utc_now
from clearing.engine.synthetic import forged
from clearing.errors import InvalidRequest
from clearing.ingest.models import TapRecord
from clearing.quarantine import service as quarantine
from clearing.quarantine.service import NotQuarantined
from clearing.registry import service as registry_service
from clearing.settings import Settings
from clearing.settlement import service as settlement_service
from clearing.staff import service as staff
from tests.clearing.apiharness import running_app
from tests.clearing.test_engine import ADULT, World, engine_pg_url, world, world_url

__all__ = ["engine_pg_url", "world", "world_url"]

PASSWORD = "ledger lines at dusk"


async def _held(world: World) -> int:
    await world.upload([forged(world.ride(ADULT))])
    await world.engine.clear_pending()
    async with world.ledger.engine.connect() as conn:
        [tap_id] = (
            await conn.execute(select(TapRecord.id).where(TapRecord.state == "quarantined"))
        ).scalars()
    return tap_id


async def _people(world: World, settings: Settings) -> dict[str, Principal]:
    """alice and bob (finance), carol (admin only)."""
    people = {}
    async with world.ledger.transaction() as conn:
        session = AsyncSession(bind=conn)
        for name, roles in (
            ("alice", {Role.FINANCE}),
            ("bob", {Role.FINANCE, Role.ADMIN}),
            ("carol", {Role.ADMIN}),
        ):
            account = await staff.add_staff(session, settings, name, PASSWORD, frozenset(roles))
            people[name] = staff.principal_of(account, 0)
        await session.close()
    return people


@pytest.fixture
def settings(world: World, tmp_path: Path) -> Settings:
    return Settings(database_url=world.url, data_dir=tmp_path)


async def _in_session(world: World, work):  # type: ignore[no-untyped-def]
    async with world.ledger.transaction() as conn:
        session = AsyncSession(bind=conn)
        try:
            return await work(session)
        finally:
            await session.close()


async def test_a_write_off_happens_only_when_a_second_officer_approves_it(
    world: World, settings: Settings
) -> None:
    tap_id = await _held(world)
    people = await _people(world, settings)
    tools = service.Tools(world.ledger, settings)

    async def ask(session: AsyncSession) -> int:
        row = await service.ask(
            session, people["alice"], tools, ApprovalKind.WRITE_OFF, str(tap_id), "forged TAC"
        )
        return row.id

    request_id = await _in_session(world, ask)
    assert await world.states() == {"quarantined": 1}  # asking changes nothing

    async def approve(who: str):  # type: ignore[no-untyped-def]
        return await _in_session(
            world, lambda s: service.approve(s, people[who], tools, request_id, "checked")
        )

    with pytest.raises(service.RequesterCannotDecide):
        await approve("alice")
    with pytest.raises(service.NotAStaffMember):
        await approve("carol")  # admin only: finance decides
    assert await world.states() == {"quarantined": 1}
    decided = await approve("bob")
    assert (decided.request.state, decided.request.decided_by) == (ApprovalState.APPROVED, "bob")
    assert decided.request.requested_by == "alice" and not decided.again
    again = await approve("bob")  # a double click carries nothing out twice
    assert again.again and again.request.decided_at == decided.request.decided_at
    assert await world.states() == {"written_off": 1}
    assert await world.balance(books.card(ADULT)) == 10_000  # a write-off moves no money
    async with world.ledger.engine.connect() as conn:
        detail = await quarantine.show(conn, tap_id)
    assert [(a.action, a.actor) for a in detail.actions] == [
        ("quarantined", "engine"),
        ("written_off", "finance:bob"),
    ]
    assert "asked by alice: forged TAC" in detail.actions[-1].note


async def test_a_rejection_carries_nothing_out_and_says_why(
    world: World, settings: Settings
) -> None:
    tap_id = await _held(world)
    people = await _people(world, settings)
    tools = service.Tools(world.ledger, settings)
    row = await _in_session(
        world,
        lambda s: service.ask(s, people["alice"], tools, ApprovalKind.WRITE_OFF, str(tap_id), "x"),
    )
    with pytest.raises(service.AlreadyRequested):
        await _in_session(
            world,
            lambda s: service.ask(
                s, people["bob"], tools, ApprovalKind.WRITE_OFF, str(tap_id), "y"
            ),
        )
    with pytest.raises(InvalidRequest):
        await _in_session(world, lambda s: service.reject(s, people["bob"], row.id, "  "))
    with pytest.raises(service.RequesterCannotDecide):
        await _in_session(world, lambda s: service.reject(s, people["alice"], row.id, "mine"))
    rejected = await _in_session(
        world, lambda s: service.reject(s, people["bob"], row.id, "the TAC key was stale")
    )
    assert rejected.request.state is ApprovalState.REJECTED
    assert rejected.request.decision_note == "the TAC key was stale"
    with pytest.raises(service.AlreadyDecided):
        await _in_session(world, lambda s: service.approve(s, people["bob"], tools, row.id))
    assert await world.states() == {"quarantined": 1}
    # decided, so the same thing may be asked again
    second = await _in_session(
        world,
        lambda s: service.ask(s, people["bob"], tools, ApprovalKind.WRITE_OFF, str(tap_id), "z"),
    )
    assert second.id != row.id and second.state is ApprovalState.PENDING


async def test_an_approval_that_cannot_be_carried_out_leaves_the_request_pending(
    world: World, settings: Settings
) -> None:
    tap_id = await _held(world)
    people = await _people(world, settings)
    tools = service.Tools(world.ledger, settings)
    row = await _in_session(
        world,
        lambda s: service.ask(s, people["alice"], tools, ApprovalKind.WRITE_OFF, str(tap_id), "x"),
    )
    async with world.ledger.transaction() as conn:  # released meanwhile: it clears again
        await quarantine.release(conn, tap_id, actor="finance:dan", note="card registered")
    with pytest.raises(NotQuarantined):
        await _in_session(world, lambda s: service.approve(s, people["bob"], tools, row.id))
    listed = await _in_session(
        world, lambda s: service.list_requests(s, people["bob"], state=ApprovalState.PENDING)
    )
    assert [r.id for r in listed] == [row.id]


async def test_an_early_settlement_is_settled_once_by_the_second_officer(
    world: World, settings: Settings
) -> None:
    await world.upload([world.ride(ADULT, 300, at=utc_now())])
    await world.engine.clear_pending()
    people = await _people(world, settings)
    tools = service.Tools(world.ledger, settings)
    calendar = settlement_service.calendar_of(settings)
    today = calendar.business_day(utc_now())
    with pytest.raises(service.NotNeeded):  # a closed day is settled directly
        await _in_session(
            world,
            lambda s: service.ask(
                s,
                people["alice"],
                tools,
                ApprovalKind.EARLY_SETTLEMENT,
                calendar.last_closed_day(utc_now()).isoformat(),
                "x",
            ),
        )
    row = await _in_session(
        world,
        lambda s: service.ask(
            s, people["alice"], tools, ApprovalKind.EARLY_SETTLEMENT, today.isoformat(), "audit"
        ),
    )
    decided = await _in_session(world, lambda s: service.approve(s, people["bob"], tools, row.id))
    files = service.write_settlement_files(decided, settings)
    assert files is not None and files.csv.exists()
    assert decided.settlement is not None
    assert [(line.participant_code, line.fares_fen) for line in decided.settlement.lines] == [
        ("bus-1", 300)
    ]
    async with world.ledger.engine.connect() as conn:
        settled = await settlement_service.load_settlement(conn, today)
    assert settled is not None and settled.created_at == decided.settlement.created_at
    again = await _in_session(world, lambda s: service.approve(s, people["bob"], tools, row.id))
    assert again.again
    assert await world.balance(books.payable("bus-1")) == 0  # paid out once


async def test_the_api_refuses_the_requester_and_the_direct_write_off(
    world: World, settings: Settings, tmp_path: Path
) -> None:
    tap_id = await _held(world)
    await _people(world, settings)
    async with running_app(world.url, tmp_path) as (app, client):
        async with app.state.sessionmaker() as session:
            tokens = {}
            for name in ("alice", "bob"):
                tokens[name], _ = await registry_service.issue_token(
                    session, Role.FINANCE, subject=name, label="t"
                )
            anonymous, _ = await registry_service.issue_token(
                session, Role.FINANCE, subject=None, label="t"
            )
            operator, _ = await registry_service.issue_token(
                session, Role.OPERATOR, subject="bus-1", label="t"
            )
            await session.commit()

        def auth(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        direct = await client.post(
            f"/v1/quarantine/{tap_id}/write-off", headers=auth(tokens["alice"]), json={"note": "x"}
        )
        assert direct.status_code == 409 and direct.json()["code"] == "second_person_required"
        body = {"kind": "write_off", "target": str(tap_id), "reason": "forged TAC"}
        nameless = await client.post("/v1/approvals", headers=auth(anonymous), json=body)
        assert nameless.status_code == 403
        assert nameless.json()["code"] == "not_a_named_staff_member"
        strict = await client.post(
            "/v1/approvals", headers=auth(tokens["alice"]), json={**body, "extra": 1}
        )
        assert strict.status_code == 422
        asked = await client.post("/v1/approvals", headers=auth(tokens["alice"]), json=body)
        assert asked.status_code == 201, asked.text
        request_id = asked.json()["id"]
        assert (await client.get("/v1/approvals", headers=auth(operator))).status_code == 403
        own = await client.post(
            f"/v1/approvals/{request_id}/approve", headers=auth(tokens["alice"]), json={}
        )
        assert own.status_code == 403
        assert own.headers["content-type"].startswith("application/problem+json")
        assert own.json()["code"] == "requester_cannot_decide"
        approved = await client.post(
            f"/v1/approvals/{request_id}/approve",
            headers=auth(tokens["bob"]),
            json={"note": "seen the terminal log"},
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["state"] == "approved"
        assert approved.json()["requested_by"] == "alice"
        assert approved.json()["decided_by"] == "bob"
        shown = await client.get(f"/v1/quarantine/{tap_id}", headers=auth(tokens["bob"]))
        assert shown.json()["record"]["state"] == "written_off"
        missing = await client.post(
            "/v1/approvals/999999/approve", headers=auth(tokens["bob"]), json={}
        )
        assert missing.status_code == 404
