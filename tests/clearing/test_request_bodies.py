"""Request bodies are read strictly, over HTTP against the real app: integers are JSON integers,
booleans JSON booleans, dates ISO strings, unknown keys and a key named twice are refused (in
terminal uploads too, where the raw body is stored and someone else parses it later)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from clearing.clinic.adapter import RulesAdapter
from clearing.clinic.rules import SchemeRule
from clearing.http.bodies import DuplicateKey, load_json
from clearing.registry import service as registry_service
from clearing.registry.models import ParticipantKind
from clearing.registry.schemas import ParticipantCreate, TerminalCreate
from clearing.settings import ESCROW_ACCOUNT_DEFAULT
from tests.clearing.apiharness import (
    SignedTerminal,
    batch_body,
    public_hex,
    random_card_no,
    random_code,
    random_terminal_id,
    tap_record,
    world,
)


def card_body(**changes: Any) -> dict[str, Any]:
    body = {
        "card_no": random_card_no(),
        "card_type": "adult",
        "holder_id": "resident-1",
        "holder_name": "Zhang San",
        "deposit_fen": 2000,
        "first_load_fen": 5000,
    }
    return {**body, **changes}


def problem_field(answer: Any) -> str:
    problem = answer.json()
    assert answer.headers["content-type"].startswith("application/problem+json")
    return problem["errors"][0]["loc"][-1]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_load_fen", "100"),
        ("first_load_fen", True),
        ("first_load_fen", False),
        ("first_load_fen", 100.5),
        ("deposit_fen", "0"),
        ("deposit_fen", True),
    ],
)
async def test_card_amounts_must_be_json_integers(sqlite_url, tmp_path, field, value) -> None:
    async with world(sqlite_url, tmp_path) as w:
        body = card_body(**{field: value})
        answer = await w.client.post("/v1/cards", json=body, headers=w.auth("admin"))
        assert answer.status_code == 422, answer.text
        assert problem_field(answer) == field
        missing = await w.client.get(f"/v1/cards/{body['card_no']}", headers=w.auth("admin"))
        assert missing.status_code == 404  # nothing was issued


async def test_a_card_just_issued_has_its_replacement_resource(sqlite_url, tmp_path) -> None:
    """Schemathesis follows the link from an issued card to its replacement: a resource of every
    card (null until a replacement is asked for), never a 404 for a card that exists."""
    async with world(sqlite_url, tmp_path) as w:
        body = card_body()
        issued = await w.client.post("/v1/cards", json=body, headers=w.auth("admin"))
        assert issued.status_code == 201, issued.text
        path = f"/v1/cards/{body['card_no']}/replacement"
        fresh = await w.client.get(path, headers=w.auth("admin"))
        assert fresh.status_code == 200 and fresh.json() is None
        replace = {"new_card_no": random_card_no(), "reason": "damaged"}
        asked = await w.client.post(
            f"/v1/cards/{body['card_no']}/replace", json=replace, headers=w.auth("admin")
        )
        assert asked.status_code == 200, asked.text
        replaced = await w.client.get(path, headers=w.auth("admin"))
        assert replaced.json()["new_card_no"] == replace["new_card_no"]
        unknown = await w.client.get(
            f"/v1/cards/{random_card_no()}/replacement", headers=w.auth("admin")
        )
        assert unknown.status_code == 404


async def test_a_well_typed_card_is_issued(sqlite_url, tmp_path) -> None:
    """A JSON number without a fraction is an integer (JSON Schema's `integer`): 5000.0 too."""
    async with world(sqlite_url, tmp_path) as w:
        for load in (5000, 5000.0):
            body = card_body(first_load_fen=load)
            answer = await w.client.post("/v1/cards", json=body, headers=w.auth("admin"))
            assert answer.status_code == 201, answer.text
            card = await w.client.get(f"/v1/cards/{body['card_no']}", headers=w.auth("admin"))
            assert card.json()["balance_fen"] == 5000


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/participants/{participant}", {"commission_bp": "150"}, "commission_bp"),
        ("/v1/participants/{participant}", {"commission_bp": True}, "commission_bp"),
        ("/v1/participants/{participant}", {"status": 1}, "status"),
        ("/v1/participants/{participant}", {"name": None}, "name"),
        ("/v1/participants/{participant}", {"bank_account": None}, "bank_account"),
        ("/v1/terminals/{terminal}", {"status": None}, "status"),
        ("/v1/terminals/{terminal}", {"line": 12}, "line"),
    ],
)
async def test_changes_are_strict_and_never_null(sqlite_url, tmp_path, path, body, field) -> None:
    async with world(sqlite_url, tmp_path) as w:
        url = path.format(participant=w.participant, terminal=w.terminal.terminal_id)
        answer = await w.client.patch(url, json=body, headers=w.auth("admin"))
        assert answer.status_code == 422, answer.text
        assert problem_field(answer) == field


async def test_unknown_keys_are_refused_and_the_schema_says_so(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        answer = await w.client.post(
            "/v1/cards", json=card_body(first_load_yuan=50), headers=w.auth("admin")
        )
        assert answer.status_code == 422 and problem_field(answer) == "first_load_yuan"
        schema = (await w.client.get("/openapi.json")).json()
        models = schema["components"]["schemas"]
        # Stripe's webhook takes Stripe's event as Stripe sends it (verified by its signature);
        # every body of ours is a strict model.
        bodies = [
            operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            for path, operations in schema["paths"].items()
            for operation in operations.values()
            if "requestBody" in operation and path != "/v1/stripe/webhook"
        ]
        assert len(bodies) >= 10
        for ref in bodies:
            name = ref.rsplit("/", 1)[-1]
            assert models[name]["additionalProperties"] is False, name
        assert models["TapRecordIn"]["additionalProperties"] is False


@pytest.mark.parametrize(
    "raw",
    [
        '{"card_no": "3100000000000001", "card_no": "3100000000000002", "card_type": "adult", '
        '"holder_id": "h", "holder_name": "n", "deposit_fen": 0, "first_load_fen": 0}',
        '{"cards": [{"card_no": "3100000000000001", "card_type": "adult", "holder_id": "h", '
        '"holder_name": "n", "deposit_fen": 0, "first_load_fen": 0, "card_no": "3100000000000003"}]}',
    ],
    ids=["top-level", "nested"],
)
async def test_a_key_named_twice_is_refused_with_its_name(sqlite_url, tmp_path, raw) -> None:
    async with world(sqlite_url, tmp_path) as w:
        path = "/v1/cards/issue-run" if raw.startswith('{"cards"') else "/v1/cards"
        headers = {**w.auth("admin"), "Content-Type": "application/json"}
        answer = await w.client.post(path, content=raw.encode(), headers=headers)
        assert answer.status_code == 422, answer.text
        problem = answer.json()
        assert problem["code"] == "duplicate_key" and '"card_no"' in problem["detail"]
        assert answer.headers["content-type"].startswith("application/problem+json")
        for card_no in ("3100000000000001", "3100000000000002", "3100000000000003"):
            got = await w.client.get(f"/v1/cards/{card_no}", headers=w.auth("admin"))
            assert got.status_code == 404


def raw_batch(batch_id: str, records: list[dict[str, Any]]) -> str:
    return json.dumps({"batch_id": batch_id, "records": records})


async def test_an_upload_naming_batch_id_twice_is_refused_and_not_stored(
    sqlite_url, tmp_path
) -> None:
    async with world(sqlite_url, tmp_path) as w:
        records = [tap_record(random_card_no(), 1, 1)]
        body = raw_batch("b-second", records).replace("{", '{"batch_id": "b-first", ', 1)
        answer = await w.terminal.post_batch(body.encode())
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "duplicate_key" and "batch_id" in answer.json()["detail"]
        stored = await w.client.get(
            f"/v1/batches?terminal_id={w.terminal.terminal_id}", headers=w.auth("admin")
        )
        assert stored.json() == []


async def test_a_record_naming_a_key_twice_is_refused(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        record = json.dumps(tap_record(random_card_no(), 1, 1, amount_fen=200))
        record = record.replace("{", '{"amount_fen": 1, ', 1)
        body = f'{{"batch_id": "b-1", "records": [{record}]}}'
        answer = await w.terminal.post_batch(body.encode())
        assert answer.status_code == 422 and "amount_fen" in answer.json()["detail"]


async def test_an_unsigned_upload_is_401_before_its_body_is_read(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        path = f"/v1/terminals/{w.terminal.terminal_id}/batches"
        body = b'{"batch_id": "a", "batch_id": "b", "records": []}'
        answer = await w.client.post(
            path, content=body, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 401


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount_fen", "100"),
        ("amount_fen", True),
        ("offline_fallback", 1),
        ("offline_fallback", "false"),
        ("occurred_at", 1764316800),
        ("kind", 1),
        ("fare_yuan", 2),
    ],
)
async def test_uploaded_records_are_strict(sqlite_url, tmp_path, field, value) -> None:
    async with world(sqlite_url, tmp_path) as w:
        record = {**tap_record(random_card_no(), 1, 1), field: value}
        answer = await w.terminal.post_batch(batch_body("b-strict", [record]))
        assert answer.status_code == 422, answer.text
        assert problem_field(answer) == field
        stored = await w.client.get(
            f"/v1/batches?terminal_id={w.terminal.terminal_id}", headers=w.auth("admin")
        )
        assert stored.json() == []


async def test_a_well_typed_upload_with_iso_times_is_stored(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        answer = await w.terminal.post_batch(
            batch_body("b-ok", [tap_record(random_card_no(), 1, 1)])
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["records"] == 1


async def test_clinic_split_takes_an_iso_time_and_refuses_a_number(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        w.app.state.insurance_adapter = RulesAdapter({"urban": SchemeRule("urban", 0, 8000, 10**6)})
        clinic = await _clinic_terminal(w)
        card = card_body(scheme="urban", first_load_fen=0)
        assert (
            await w.client.post("/v1/cards", json=card, headers=w.auth("admin"))
        ).status_code == 201
        path = f"/v1/terminals/{clinic.terminal_id}/clinic/splits"
        visit_at = datetime.now(UTC) - timedelta(hours=1)
        split = {"visit_id": "v-1", "card_no": card["card_no"], "bill_fen": 10_000}
        for when, status in ((visit_at.timestamp(), 422), (visit_at.isoformat(), 200)):
            body = json.dumps({**split, "visit_at": when}).encode()
            answer = await w.client.post(
                path, content=body, headers=clinic.headers("POST", path, body)
            )
            assert answer.status_code == status, answer.text
        assert answer.json()["insured_fen"] == 8000


async def _clinic_terminal(w: Any) -> SignedTerminal:
    key = Ed25519PrivateKey.generate()
    code, terminal_id = random_code("clinic"), random_terminal_id()
    async with w.app.state.sessionmaker() as session:
        await registry_service.create_participant(
            session,
            ParticipantCreate(
                code=code,
                name="People's Clinic",
                kind=ParticipantKind.CLINIC,
                commission_bp=50,
                bank_account="6222020200112233446",
                bank_name="ICBC Plateau City",
            ),
            escrow_account=ESCROW_ACCOUNT_DEFAULT,
        )
        await registry_service.register_terminal(
            session,
            TerminalCreate(
                terminal_id=terminal_id,
                participant=code,
                kind="clinic",
                line="outpatients",
                public_key=public_hex(key),
            ),
        )
        await session.commit()
    return SignedTerminal(terminal_id, key, w.client)


# Text without braces: the test finds objects by their "{" in the serialised document.
words = st.text(st.characters(exclude_characters="{}"), max_size=4)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | words,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(words, inner, max_size=3),
    max_leaves=12,
)


@given(json_values, words, st.randoms(use_true_random=False))
def test_a_key_twice_is_refused_at_any_depth(document, key, random) -> None:
    """Unique keys parse as the standard parser reads them; one object anywhere in the document
    naming a key twice makes the whole body refused, with that key named."""
    raw = json.dumps(document)
    assert load_json(raw) == json.loads(raw)
    objects = [i for i, char in enumerate(raw) if char == "{"]
    at = random.choice(objects) if objects else None
    if at is None:
        raw, at = json.dumps({"wrapper": document}), 0
    doubled = (
        raw[: at + 1]
        + f"{json.dumps(key)}: 1, {json.dumps(key)}: 2"
        + (", " if raw[at + 1] != "}" else "")
        + raw[at + 1 :]
    )
    with pytest.raises(DuplicateKey) as refused:
        load_json(doubled)
    assert refused.value.key == key


async def test_a_first_load_above_the_chip_limit_is_refused(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        body = card_body(first_load_fen=100_001)
        answer = await w.client.post("/v1/cards", json=body, headers=w.auth("admin"))
        assert answer.status_code == 422 and problem_field(answer) == "first_load_fen"
        schema = (await w.client.get("/openapi.json")).json()
        load = schema["components"]["schemas"]["CardIssue"]["properties"]["first_load_fen"]
        assert load["maximum"] == 100_000
