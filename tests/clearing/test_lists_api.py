"""Deny and action lists over HTTP: signed deltas, versions, fetches recorded, fleet coverage."""

from __future__ import annotations

import pytest

from clearing.lists import service as lists_service
from clearing.lists.signing import verify_body
from clearing.registry import service as registry_service
from clearing.registry.models import CardType
from clearing.registry.schemas import CardIssue
from tests.clearing.apiharness import random_card_no, world


@pytest.fixture(params=["pg_url", "sqlite_url"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(request.param)


async def issue(w, holder: str = "r-1") -> str:
    card_no = random_card_no()
    async with w.app.state.sessionmaker() as session:
        await registry_service.issue_card(
            session,
            w.app.state.ledger,
            CardIssue(
                card_no=card_no,
                card_type=CardType.ADULT,
                holder_id=holder,
                holder_name="Li Lei",
                deposit_fen=0,
                first_load_fen=0,
            ),
            "test",
        )
        await session.commit()
    return card_no


async def test_lost_card_reaches_terminal_as_signed_delta(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        key = (await w.client.get("/v1/lists/public-key")).json()["public_key"]
        earlier = await issue(w)
        await w.client.post(
            f"/v1/cards/{earlier}/report-lost", json={"reason": "x"}, headers=w.auth("admin")
        )
        full = (await w.terminal.get_list("deny", 0)).json()
        assert earlier in full["added"]
        assert full["full"] is True and verify_body(key, full)
        held = full["version"]
        card_no = await issue(w)
        lost = await w.client.post(
            f"/v1/cards/{card_no}/report-lost",
            json={"reason": "left on bus"},
            headers=w.auth("admin"),
        )
        assert lost.status_code == 200, lost.text
        assert lost.json()["card"]["status"] == "lost"
        version = lost.json()["deny_list_version"]
        assert version > held
        delta = (await w.terminal.get_list("deny", held)).json()
        assert verify_body(key, delta)
        assert delta["full"] is False and delta["since"] == held and delta["version"] == version
        assert card_no in delta["added"] and delta["removed"] == []
        forged = {**delta, "added": []}
        assert not verify_body(key, forged)
        # nothing new since: empty delta at the same version
        again = (await w.terminal.get_list("deny", version)).json()
        assert again["added"] == [] and again["removed"] == [] and again["version"] == version


async def test_unblocked_card_is_removed_and_full_list_is_current(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        card_no = await issue(w)
        blocked = await w.client.post(
            f"/v1/cards/{card_no}/block",
            json={"reason": "clone suspected"},
            headers=w.auth("admin"),
        )
        version = blocked.json()["deny_list_version"]
        unblocked = await w.client.post(
            f"/v1/cards/{card_no}/unblock", json={"reason": "false alarm"}, headers=w.auth("admin")
        )
        assert unblocked.json()["card"]["status"] == "active"
        delta = (await w.terminal.get_list("deny", version)).json()
        assert delta["removed"] == [card_no]
        full = (await w.terminal.get_list("deny", 0)).json()
        assert card_no not in full["added"]


async def test_fetches_are_recorded_and_coverage_measured(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        card_no = await issue(w)
        lost = await w.client.post(
            f"/v1/cards/{card_no}/report-lost", json={"reason": "lost"}, headers=w.auth("admin")
        )
        version = lost.json()["deny_list_version"]
        coverage = await w.client.get(
            f"/v1/lists/deny/coverage?version={version}", headers=w.auth("finance")
        )
        assert w.terminal.terminal_id in coverage.json()["terminals_behind"]
        assert (await w.terminal.get_list("deny", 0)).status_code == 200
        coverage = (
            await w.client.get(
                f"/v1/lists/deny/coverage?version={version}", headers=w.auth("admin")
            )
        ).json()
        assert w.terminal.terminal_id not in coverage["terminals_behind"]
        assert coverage["terminals_reached"] >= 1
        refused = await w.client.get("/v1/lists/deny/coverage", headers=w.auth("operator"))
        assert refused.status_code == 403


async def test_pending_load_goes_out_on_the_action_list_and_leaves_when_delivered(
    db_url, tmp_path
) -> None:
    async with world(db_url, tmp_path) as w:
        card_no = await issue(w)
        held = (await w.terminal.get_list("action", 0)).json()["version"]
        load_id = f"L-{card_no}"
        async with w.app.state.sessionmaker() as session:
            await lists_service.add_pending_load(
                session, load_id=load_id, card_no=card_no, amount_fen=5000, source="test"
            )
            await lists_service.add_pending_load(
                session, load_id=load_id, card_no=card_no, amount_fen=5000, source="test"
            )
            await session.commit()
        delta = (await w.terminal.get_list("action", held)).json()
        assert [item["load_id"] for item in delta["added"]] == [load_id]
        assert delta["added"][0]["amount_fen"] == 5000 and delta["added"][0]["card_no"] == card_no
        async with w.app.state.sessionmaker() as session:
            from clearing.lists.models import PendingLoadState

            await lists_service.mark_pending_load(session, load_id, PendingLoadState.DELIVERED)
            await session.commit()
        after = (await w.terminal.get_list("action", delta["version"])).json()
        assert after["removed"] == [load_id]


async def test_list_fetch_needs_the_terminals_own_signature(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        other = await w.add_terminal()
        path = f"/v1/terminals/{w.terminal.terminal_id}/deny-list?since=0"
        forbidden = await w.client.get(path, headers=other.headers("GET", path, b""))
        assert forbidden.status_code == 403
        unsigned = await w.client.get(path)
        assert unsigned.status_code == 401
        # the query is signed too: changing `since` after signing breaks the signature
        headers = w.terminal.headers("GET", path, b"")
        tampered = await w.client.get(path.replace("since=0", "since=1"), headers=headers)
        assert tampered.status_code == 401


async def test_concurrent_losses_each_get_a_version_and_all_reach_the_list(
    pg_url, tmp_path
) -> None:
    import asyncio

    async with world(pg_url, tmp_path) as w:
        cards = [await issue(w) for _ in range(6)]
        held = (await w.terminal.get_list("deny", 0)).json()["version"]
        responses = await asyncio.gather(
            *(
                w.client.post(
                    f"/v1/cards/{card_no}/report-lost",
                    json={"reason": "x"},
                    headers=w.auth("admin"),
                )
                for card_no in cards
            )
        )
        assert [r.status_code for r in responses] == [200] * 6
        versions = sorted(r.json()["deny_list_version"] for r in responses)
        assert len(set(versions)) == 6 and versions[0] > held
        delta = (await w.terminal.get_list("deny", held)).json()
        assert set(cards) <= set(delta["added"])


async def test_rotated_terminal_key_refuses_the_old_key(sqlite_url, tmp_path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.clearing.apiharness import public_hex

    async with world(sqlite_url, tmp_path) as w:
        old_key = w.terminal.key
        new_key = Ed25519PrivateKey.generate()
        rotated = await w.client.patch(
            f"/v1/terminals/{w.terminal.terminal_id}",
            json={"public_key": public_hex(new_key)},
            headers=w.auth("admin"),
        )
        assert rotated.status_code == 200
        assert (await w.terminal.get_list("deny", 0)).status_code == 401
        w.terminal.key = new_key
        assert (await w.terminal.get_list("deny", 0)).status_code == 200
        assert old_key is not new_key
        refused = await w.client.patch(
            f"/v1/terminals/{w.terminal.terminal_id}",
            json={"public_key": public_hex(new_key)},
            headers=w.auth("operator"),
        )
        assert refused.status_code == 403


async def test_expired_pending_loads_are_found_and_leave_the_action_list(
    sqlite_url, tmp_path
) -> None:
    from datetime import timedelta

    from clearing.db.base import utc_now
    from clearing.errors import Conflict
    from clearing.lists.models import PendingLoadState

    async with world(sqlite_url, tmp_path) as w:
        card_no = await issue(w)
        now = utc_now()
        async with w.app.state.sessionmaker() as session:
            for load_id, expires in (
                ("L-old", now - timedelta(seconds=1)),
                ("L-new", now + timedelta(days=1)),
            ):
                await lists_service.add_pending_load(
                    session,
                    load_id=load_id,
                    card_no=card_no,
                    amount_fen=100,
                    source="test",
                    expires_at=expires,
                )
            due = await lists_service.pending_loads_to_expire(session, now)
            assert [load.load_id for load in due] == ["L-old"]
            await lists_service.mark_pending_load(session, "L-old", PendingLoadState.EXPIRED)
            with pytest.raises(Conflict):
                await lists_service.mark_pending_load(session, "L-old", PendingLoadState.DELIVERED)
            await session.commit()
        full = (await w.terminal.get_list("action", 0)).json()
        assert [item["load_id"] for item in full["added"]] == ["L-new"]
