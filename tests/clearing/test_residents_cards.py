"""Residents' cards over HTTP: linking by proof (and its limits), refusals, unlinking, and a
resident who never sees another's card. Cleared history comes from the real engine (SQLite).
On PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from cardio.keystore import create_key_store
from clearing.db.base import utc_now
from clearing.engine.service import ClearingEngine, EngineConfig, load_verifier
from clearing.engine.synthetic import SyntheticCard, TapSigner, purchase
from clearing.errors import NotFound
from clearing.lists import service as lists_service
from clearing.residents import service
from clearing.residents.errors import CardNotUsable
from clearing.residents.models import FailedAttempt
from tests.clearing.apiharness import random_card_no, world
from tests.clearing.residentharness import issue_card, link, new_resident


@pytest.fixture(params=["pg_url", "sqlite_url"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(request.param)


async def test_a_card_links_with_its_balance_or_its_last_load(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        han = await new_resident(w)
        mine, kids = (
            await issue_card(w, first_load_fen=5000),
            await issue_card(w, first_load_fen=3000),
        )
        linked = await link(w, han, mine, 5000)
        assert linked.status_code == 201, linked.text
        assert linked.json()["balance_fen"] == 5000 and linked.json()["status"] == "active"
        family = await w.client.post(
            "/v1/me/cards",
            json={
                "card_no": kids,
                "proof": {"kind": "last_load", "amount_fen": 3000},
                "label": "Xiaoming",
            },
            headers=han.auth,
        )
        assert family.status_code == 201, family.text
        again = await link(w, han, mine, 5000)
        assert again.status_code == 200  # linked already: the same link
        listed = (await w.client.get("/v1/me/cards", headers=han.auth)).json()
        assert [(c["card_no"], c["label"]) for c in listed] == [(mine, None), (kids, "Xiaoming")]
        async with w.app.state.sessionmaker() as session:
            cards = await service.linked_cards(session, han.resident_id)
            assert [card.card_no for card in cards] == [mine, kids]
            assert (
                await service.require_linked_card(session, han.resident_id, kids)
            ).card_no == kids


async def test_wrong_proofs_are_counted_per_resident_and_per_card(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        guesser, holder = await new_resident(w), await new_resident(w)
        card_no = await issue_card(w, first_load_fen=5000)
        limit = w.app.state.settings.card_link_failures_max
        for guess in range(limit):
            wrong = await link(w, guesser, card_no, 100 + guess)
            assert wrong.status_code == 422 and wrong.json()["code"] == "card_proof_wrong"
            assert "balance" in wrong.json()["detail"] and "last load" in wrong.json()["detail"]
        locked = await link(w, guesser, card_no, 5000)  # even the right answer waits now
        assert locked.status_code == 429 and locked.json()["code"] == "card_link_locked"
        assert 0 < int(locked.headers["retry-after"]) <= w.app.state.settings.card_link_window_s
        # per resident: another card of the guesser waits too
        other = await issue_card(w, first_load_fen=700)
        assert (await link(w, guesser, other, 700)).status_code == 429
        # per card: its real holder waits as well, until the wrong tries leave the window
        assert (await link(w, holder, card_no, 5000)).status_code == 429
        async with w.app.state.sessionmaker() as session:
            await session.execute(
                update(FailedAttempt)
                .where(FailedAttempt.card_no == card_no)
                .values(at=utc_now() - timedelta(hours=2))
            )
            await session.commit()
        assert (await link(w, holder, card_no, 5000)).status_code == 201


async def test_a_number_that_names_no_card_answers_as_a_wrong_proof(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        han = await new_resident(w)
        card_no = await issue_card(w, first_load_fen=5000)
        never_issued = await link(w, han, random_card_no(), 5000)
        wrong = await link(w, han, card_no, 4999)
        assert never_issued.status_code == wrong.status_code == 422
        assert never_issued.json()["code"] == wrong.json()["code"] == "card_proof_wrong"


async def test_a_lost_card_cannot_be_linked_and_a_linked_one_lost_cannot_be_used(
    db_url, tmp_path
) -> None:
    async with world(db_url, tmp_path) as w:
        han = await new_resident(w)
        lost, linked_then_lost = await issue_card(w), await issue_card(w)
        assert (await link(w, han, linked_then_lost, 5000)).status_code == 201
        for card_no in (lost, linked_then_lost):
            response = await w.client.post(
                f"/v1/cards/{card_no}/report-lost",
                json={"reason": "left on the bus"},
                headers=w.auth("admin"),
            )
            assert response.status_code == 200, response.text
        refused = await link(w, han, lost, 5000)
        assert refused.status_code == 409 and refused.json()["code"] == "card_not_linkable"
        assert "reported lost" in refused.json()["detail"]
        detail = (await w.client.get(f"/v1/me/cards/{linked_then_lost}", headers=han.auth)).json()
        assert detail["status"] == "lost"
        async with w.app.state.sessionmaker() as session:
            with pytest.raises(CardNotUsable, match="reported lost"):
                await service.require_linked_card(session, han.resident_id, linked_then_lost)
            with pytest.raises(NotFound):
                await service.require_linked_card(session, han.resident_id, lost)


async def test_one_card_one_resident_at_a_time_and_unlinking(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        first, second = await new_resident(w), await new_resident(w)
        card_no = await issue_card(w, first_load_fen=1234)
        assert (await link(w, first, card_no, 1234)).status_code == 201
        taken = await link(w, second, card_no, 1234)
        assert (
            taken.status_code == 409 and taken.json()["code"] == "card_linked_to_another_resident"
        )
        unlinked = await w.client.delete(f"/v1/me/cards/{card_no}", headers=first.auth)
        assert unlinked.status_code == 204
        assert (
            await w.client.get(f"/v1/me/cards/{card_no}", headers=first.auth)
        ).status_code == 404
        assert (await w.client.get("/v1/me/cards", headers=first.auth)).json() == []
        again = await w.client.delete(f"/v1/me/cards/{card_no}", headers=first.auth)
        assert again.status_code == 404
        assert (await link(w, second, card_no, 1234)).status_code == 201


async def test_two_residents_racing_for_one_card_link_it_once(pg_url, tmp_path) -> None:
    async with world(pg_url, tmp_path) as w:
        residents = [await new_resident(w) for _ in range(3)]
        card_no = await issue_card(w, first_load_fen=800)
        answers = await asyncio.gather(*(link(w, who, card_no, 800) for who in residents))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [201, 409, 409], [a.text for a in answers]


def _card_routes(app) -> list[tuple[str, str]]:
    """Every GET and DELETE operation under /v1/me/cards/{card_no} in the API's schema (those
    of top-ups and bills too, when they come): each must hide another resident's card."""
    return [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/v1/me/cards/{card_no}")
        for method in operations
        if method in ("get", "delete")
    ]


async def test_a_resident_never_sees_anothers_card(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        mine_owner, neighbour = await new_resident(w), await new_resident(w)
        mine, theirs = (
            await issue_card(w, first_load_fen=900),
            await issue_card(w, first_load_fen=901),
        )
        assert (await link(w, mine_owner, mine, 900)).status_code == 201
        assert (await link(w, neighbour, theirs, 901)).status_code == 201
        listed = (await w.client.get("/v1/me/cards", headers=mine_owner.auth)).json()
        assert [card["card_no"] for card in listed] == [mine]
        routes = _card_routes(w.app)
        assert {path for _, path in routes} >= {
            "/v1/me/cards/{card_no}",
            "/v1/me/cards/{card_no}/history",
        }
        for method, path in routes:
            never_issued = random_card_no()
            bodies = []
            for card_no in (theirs, never_issued):
                url = path.replace("{card_no}", card_no)
                answer = await w.client.request(method, url, headers=mine_owner.auth)
                assert answer.status_code == 404, (method, path, answer.text)
                bodies.append(answer.text.replace(card_no, "<no>"))
            # exactly as a number never issued: nothing tells the neighbour's card exists
            assert bodies[0] == bodies[1], (method, path)
        # the neighbour's card is still linked and whole
        assert (
            await w.client.get(f"/v1/me/cards/{theirs}", headers=neighbour.auth)
        ).status_code == 200


async def _clear(w, key_store_path) -> None:
    engine = ClearingEngine(w.app.state.ledger, load_verifier(key_store_path), EngineConfig())
    await engine.clear_pending()


async def test_cleared_taps_prove_the_card_and_show_in_its_history(sqlite_url, tmp_path) -> None:
    """The real path: a card rides twice, the validator uploads, the engine clears; the holder
    links with the balance after the last ride and reads both rides, newest first."""
    store = create_key_store(tmp_path / "keys.json")
    signer = TapSigner(store)
    async with world(sqlite_url, tmp_path) as w:
        han = await new_resident(w)
        card_no = await issue_card(w, first_load_fen=5000)
        card = SyntheticCard(card_no, 5000)
        at = datetime.now(UTC) - timedelta(hours=1)
        records = [
            purchase(
                signer,
                card,
                terminal_id=w.terminal.terminal_id,
                terminal_seq=seq,
                amount_fen=fare,
                at=at + timedelta(minutes=seq),
                route_id="12",
            )
            for seq, fare in ((1, 200), (2, 300))
        ]
        body = json.dumps({"batch_id": "rides-1", "records": records}).encode()
        assert (await w.terminal.post_batch(body)).status_code == 200
        await _clear(w, tmp_path / "keys.json")

        assert (await link(w, han, card_no, 5000)).status_code == 422  # no longer its balance
        linked = await link(w, han, card_no, 4500)
        assert linked.status_code == 201, linked.text
        async with w.app.state.sessionmaker() as session:
            await lists_service.add_pending_load(
                session, load_id=f"test-{card_no}", card_no=card_no, amount_fen=1000, source="test"
            )
            await session.commit()
        detail = (await w.client.get(f"/v1/me/cards/{card_no}", headers=han.auth)).json()
        assert detail["balance_fen"] == 4500 and detail["last_reported_balance_fen"] == 4500
        assert [load["amount_fen"] for load in detail["pending_loads"]] == [1000]
        history = (await w.client.get(f"/v1/me/cards/{card_no}/history", headers=han.auth)).json()
        assert [(h["amount_fen"], h["balance_after_fen"]) for h in history] == [
            (300, 4500),
            (200, 4800),
        ]
        page = await w.client.get(
            f"/v1/me/cards/{card_no}/history?limit=1&offset=1", headers=han.auth
        )
        assert [h["card_counter"] for h in page.json()] == [history[1]["card_counter"]]
