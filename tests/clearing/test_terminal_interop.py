"""The terminals package's own client against a real uvicorn on PostgreSQL: the protocol holds.

Uploads with `terminals.client.ClearingClient` (its signing, its batch bytes), applies the
signed deny list with `terminals.lists.ListStore` (its signature check, its delta rules).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import httpx
import pytest

from clearing.auth.models import Role
from terminals.client import ClearingClient
from terminals.errors import UploadRefused
from terminals.journal import Batch, RecordKind, RecordStatus
from terminals.journal import TapRecord as JournalRecord
from terminals.lists import ListStore
from terminals.signing import new_credential
from tests.clearing.apiharness import (
    issue_token_in_subprocess,
    random_card_no,
    random_code,
    random_terminal_id,
    uvicorn_server,
)


@pytest.fixture(scope="module")
def server(pg_url, tmp_path_factory):
    with uvicorn_server(pg_url, tmp_path_factory.mktemp("interop")) as (base, env):
        yield base, issue_token_in_subprocess(env, Role.ADMIN, "interop")


def journal_batch(terminal_id: str, batch_no: int, card_no: str, seqs: range) -> Batch:
    import json

    records = [
        JournalRecord(
            kind=RecordKind.PURCHASE,
            status=RecordStatus.COMPLETE,
            terminal_seq=seq,
            card_no=card_no,
            card_counter=seq,
            txn_type=6,
            amount_fen=200,
            balance_before_fen=10_000 - 200 * seq,
            balance_after_fen=10_000 - 200 * (seq + 1),
            occurred_at=datetime(2026, 11, 28, 7, 30, seq % 60, tzinfo=UTC),
            tac=secrets.token_hex(4).upper(),
            card_type="adult",
        )
        for seq in seqs
    ]
    batch_id = f"{terminal_id}-{batch_no:08d}"
    body = json.dumps(
        {"batch_id": batch_id, "records": [r.to_wire() for r in records]}, separators=(",", ":")
    ).encode()
    return Batch(batch_no, batch_id, body, len(records))


def test_terminal_client_uploads_and_applies_signed_lists(server) -> None:
    base, token = server
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
    code = random_code("bus")
    credential = new_credential(random_terminal_id())
    assert (
        admin.post(
            "/v1/participants",
            json={
                "code": code,
                "name": "Interop Bus",
                "kind": "bus_operator",
                "commission_bp": 100,
                "bank_account": "6222020200112233445",
                "bank_name": "ICBC",
            },
        ).status_code
        == 201
    )
    assert (
        admin.post(
            "/v1/terminals",
            json={
                "terminal_id": credential.terminal_id,
                "participant": code,
                "kind": "bus",
                "public_key": credential.public_key_hex,
                "line": "12",
            },
        ).status_code
        == 201
    )
    card_no = random_card_no()
    public_key = httpx.get(f"{base}/v1/lists/public-key").json()["public_key"]
    lists = ListStore(None, public_key)
    with ClearingClient(base, credential) as client:
        batch = journal_batch(credential.terminal_id, 2, card_no, range(4, 7))
        first = client.upload_batch(batch)
        assert first["duplicate"] is False and first["records"] == 3
        again = client.upload_batch(batch)
        assert again["duplicate"] is True
        early = client.upload_batch(journal_batch(credential.terminal_id, 1, card_no, range(1, 3)))
        assert early["sequence_gaps"] == [{"from_seq": 3, "to_seq": 3}]
        with pytest.raises(UploadRefused) as refused:
            client.upload_batch(journal_batch(credential.terminal_id, 1, card_no, range(1, 4)))
        assert refused.value.args and "409" in str(refused.value)
        for kind in ("deny", "action"):
            assert lists.apply(client.fetch_list(kind, 0)) in (True, False)
        held = lists.versions().deny
        assert (
            admin.post(
                "/v1/cards",
                json={
                    "card_no": card_no,
                    "card_type": "adult",
                    "holder_id": "r-io",
                    "holder_name": "Wang",
                    "deposit_fen": 0,
                    "first_load_fen": 0,
                },
            ).status_code
            == 201
        )
        lost = admin.post(f"/v1/cards/{card_no}/report-lost", json={"reason": "lost on bus 12"})
        assert lost.status_code == 200
        assert not lists.is_denied(card_no)
        assert lists.apply(client.fetch_list("deny", held)) is True
        assert lists.is_denied(card_no)
        assert lists.versions().deny == lost.json()["deny_list_version"]
    batches = admin.get(f"/v1/batches?terminal_id={credential.terminal_id}").json()
    assert sorted(b["record_count"] for b in batches) == [2, 3]
