"""Card life against its transition table: random runs of actions through the HTTP API.

The model is `clearing.registry.lifecycle` (pure); the service must accept exactly what it
allows, land in the status it names, keep the deny list in step, and move money only once.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearing.auth.models import Role
from clearing.lists import service as lists_service
from clearing.registry.lifecycle import TRANSITIONS, CardAction, denied, next_status
from clearing.registry.models import CardStatus
from tests.clearing.apiharness import random_card_no, world
from tests.clearing.staffharness import officer

ACTION_PATHS = {
    CardAction.REPORT_LOST: "report-lost",
    CardAction.BLOCK: "block",
    CardAction.UNBLOCK: "unblock",
    CardAction.REPLACE: "replace",
    CardAction.REFUND: "refund",
}


async def _refund(w, card_no: str, clerk: dict, finance: dict):  # type: ignore[no-untyped-def]
    """A refund is asked at the counter and carried out when finance approves it."""
    body = {"kind": "card_refund", "target": card_no, "reason": "model", "paid_by": "cash"}
    asked = await w.client.post("/v1/approvals", json=body, headers=clerk)
    if asked.status_code != 201:
        return asked
    return await w.client.post(
        f"/v1/approvals/{asked.json()['id']}/approve", json={}, headers=finance
    )


def test_every_status_but_active_is_denied_and_terminal_states_are_final() -> None:
    for status in CardStatus:
        assert denied(status) is (status is not CardStatus.ACTIVE)
    for final in (CardStatus.REPLACED, CardStatus.REFUNDED):
        assert all(next_status(final, action) is None for action in CardAction)
    assert {target for _, target in TRANSITIONS.values()} <= set(CardStatus)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=st.lists(st.sampled_from(list(CardAction)), min_size=1, max_size=7))
async def test_card_follows_its_transition_table(sqlite_url, tmp_path, actions) -> None:
    async with world(sqlite_url, tmp_path) as w:
        admin = w.auth("admin")
        card_no = random_card_no()
        issued = await w.client.post(
            "/v1/cards",
            json={
                "card_no": card_no,
                "card_type": "senior",
                "holder_id": "r-s",
                "holder_name": "Zhang",
                "deposit_fen": 1000,
                "first_load_fen": 3000,
            },
            headers=admin,
        )
        assert issued.status_code == 201
        status = CardStatus.ACTIVE
        _, clerk = await officer(w.app, Role.ADMIN, prefix="adm")
        _, finance = await officer(w.app)
        for action in actions:
            body: dict = {"reason": "model"}
            if action is CardAction.REPLACE:
                body["new_card_no"] = random_card_no()
            if action is CardAction.REFUND:
                response = await _refund(w, card_no, clerk, finance)
            else:
                response = await w.client.post(
                    f"/v1/cards/{card_no}/{ACTION_PATHS[action]}", json=body, headers=admin
                )
            expected = next_status(status, action)
            if expected is None:
                assert response.status_code == 409, (status, action, response.text)
                assert response.json()["code"] == "card_state_conflict"
                continue
            assert response.status_code == 200, (status, action, response.text)
            status = expected
            shown = await w.client.get(f"/v1/cards/{card_no}", headers=admin)
            assert shown.json()["card"]["status"] == status.value
            async with w.app.state.sessionmaker() as session:
                assert await lists_service.is_denied(session, card_no) is denied(status)
        final = (await w.client.get(f"/v1/cards/{card_no}", headers=admin)).json()
        refunded = status is CardStatus.REFUNDED
        assert final["balance_fen"] == (0 if refunded else 3000)
