"""The quarantine: finance staff list, inspect, release (re-clear after a fix) and write off
records; every action is audited with who and why; the endpoints are for finance staff."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from clearing import books
from clearing.auth.models import Role
from clearing.engine.reasons import QuarantineReason as R
from clearing.engine.synthetic import SyntheticCard, forged
from clearing.errors import InvalidRequest
from clearing.ingest.models import TapRecord
from clearing.quarantine import service
from clearing.quarantine.service import NotQuarantined, OverrideNotAllowed
from clearing.registry import service as registry_service
from clearing.registry.schemas import CardIssue
from tests.clearing.apiharness import running_app
from tests.clearing.test_engine import ADULT, World, engine_pg_url, world, world_url

__all__ = ["engine_pg_url", "world", "world_url"]


async def _quarantined_ids(world: World) -> list[int]:
    async with world.ledger.engine.connect() as conn:
        rows = await conn.execute(
            select(TapRecord.id).where(TapRecord.state == "quarantined").order_by(TapRecord.id)
        )
        return list(rows.scalars())


async def test_release_after_registering_the_card_posts_it(world: World) -> None:
    newcomer = SyntheticCard("3155555555555555", 1_000)
    world.cards[newcomer.card_no] = newcomer
    await world.upload([world.ride(newcomer.card_no, 300)])
    await world.engine.clear_pending()
    [tap_id] = await _quarantined_ids(world)
    async with world.ledger.transaction() as conn:
        rows = await service.list_quarantined(conn, reason=R.UNKNOWN_CARD)
        assert [row.id for row in rows] == [tap_id]
        # the fix: the card is registered (it was personalised but never recorded)
        session = AsyncSession(bind=conn)
        await registry_service.issue_card(
            session,
            world.ledger,
            CardIssue(
                card_no=newcomer.card_no,
                card_type="adult",
                holder_id="late",
                holder_name="Late Entry",
                deposit_fen=0,
                first_load_fen=1_000,
            ),
            "test",
        )
        await session.flush()
        await session.close()
        await service.release(conn, tap_id, actor="finance:fred", note="card registered late")
    summary = await world.engine.clear_pending()
    assert summary.posted == 1
    assert await world.balance(books.card(newcomer.card_no)) == 700
    async with world.ledger.engine.connect() as conn:
        detail = await service.show(conn, tap_id)
    assert [(a.action, a.actor) for a in detail.actions] == [
        ("quarantined", "engine"),
        ("released", "finance:fred"),
    ]
    assert detail.record["state"] == "cleared"


async def test_a_released_forgery_is_quarantined_again(world: World) -> None:
    await world.upload([forged(world.ride(ADULT))])
    await world.engine.clear_pending()
    [tap_id] = await _quarantined_ids(world)
    async with world.ledger.transaction() as conn:
        with pytest.raises(OverrideNotAllowed):
            await service.release(conn, tap_id, actor="f", note="x", override=R.BAD_TAC)
        await service.release(conn, tap_id, actor="finance:fred", note="try again")
    await world.engine.clear_pending()
    assert await world.reasons() == [R.BAD_TAC]
    assert await world.balance(books.payable("bus-1")) == 0


async def test_override_posts_a_broken_balance_chain(world: World) -> None:
    first = world.ride(ADULT, 200)
    world.cards[ADULT].balance_fen -= 100
    second = world.ride(ADULT, 200)
    await world.upload([first, second])
    await world.engine.clear_pending()
    [tap_id] = await _quarantined_ids(world)
    async with world.ledger.transaction() as conn:
        await service.release(
            conn,
            tap_id,
            actor="finance:fred",
            note="card log read at the counter: a 1 yuan purchase offline, lost journal",
            override=R.BALANCE_CHAIN_BROKEN,
        )
    await world.engine.clear_pending()
    assert await world.reasons() == []
    assert await world.balance(books.payable("bus-1")) == 400


async def test_write_off_closes_the_record_and_moves_no_money(world: World) -> None:
    await world.upload([forged(world.ride(ADULT))])
    await world.engine.clear_pending()
    [tap_id] = await _quarantined_ids(world)
    async with world.ledger.transaction() as conn:
        with pytest.raises(InvalidRequest):
            await service.write_off(conn, tap_id, actor="finance:fred", note="  ")
        await service.write_off(conn, tap_id, actor="finance:fred", note="forged: reported")
        with pytest.raises(NotQuarantined):
            await service.write_off(conn, tap_id, actor="finance:fred", note="again")
    assert await world.states() == {"written_off": 1}
    assert await world.balance(books.card(ADULT)) == 10_000


async def test_endpoints_are_for_finance_staff(world: World, tmp_path: Path) -> None:
    await world.upload([forged(world.ride(ADULT))])
    await world.engine.clear_pending()
    [tap_id] = await _quarantined_ids(world)
    async with running_app(world.url, tmp_path) as (app, client):
        async with app.state.sessionmaker() as session:
            finance, _ = await registry_service.issue_token(
                session, Role.FINANCE, subject="fred", label="t"
            )
            operator, _ = await registry_service.issue_token(
                session, Role.OPERATOR, subject="bus-1", label="t"
            )
            await session.commit()
        refused = await client.get(
            "/v1/quarantine", headers={"Authorization": f"Bearer {operator}"}
        )
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("application/problem+json")
        auth = {"Authorization": f"Bearer {finance}"}
        listed = await client.get("/v1/quarantine", headers=auth, params={"reason": "bad_tac"})
        assert listed.status_code == 200
        assert [row["id"] for row in listed.json()] == [tap_id]
        empty = await client.post(f"/v1/quarantine/{tap_id}/write-off", headers=auth, json={})
        assert empty.status_code == 422
        direct = await client.post(
            f"/v1/quarantine/{tap_id}/write-off", headers=auth, json={"note": "forged"}
        )
        assert direct.status_code == 409  # a write-off asks a second officer (test_approvals)
        assert direct.json()["code"] == "second_person_required"
        assert "/v1/approvals" in direct.json()["detail"]
        missing = await client.get("/v1/quarantine/999999999", headers=auth)
        assert missing.status_code == 404


async def test_a_ledger_refusal_is_quarantined_and_released_under_a_new_id(world: World) -> None:
    from clearing.books import LEDGER_CNY, TransferCode
    from ledger import Transfer, transfer_id

    ride = world.ride(ADULT, 300)
    # someone already used this tap's transfer id for something else (a bug elsewhere)
    async with world.ledger.transaction() as conn:
        [squatted] = await world.ledger.create_transfers(
            [
                Transfer(
                    id=transfer_id(f"tap:{ADULT}:offline:{ride['card_counter']}"),
                    debit_account_id=books.account_of(books.card(ADULT)).id,
                    credit_account_id=books.account_of(books.BANK_CASH).id,
                    amount=1,
                    ledger=LEDGER_CNY,
                    code=TransferCode.CARD_REFUND,
                )
            ],
            conn=conn,
        )
    assert squatted.ok
    await world.upload([ride])
    await world.engine.clear_pending()
    [tap_id] = await _quarantined_ids(world)
    assert await world.reasons() == [R.LEDGER_REFUSED]
    async with world.ledger.engine.connect() as conn:
        detail = await service.show(conn, tap_id)
    assert "exists_with_different" in detail.actions[-1].note
    async with world.ledger.transaction() as conn:
        await service.release(conn, tap_id, actor="finance:fred", note="id clash fixed")
    summary = await world.engine.clear_pending()
    assert summary.posted == 1
    assert await world.balance(books.payable("bus-1")) == 300
    assert await world.balance(books.card(ADULT)) == 10_000 - 1 - 300
