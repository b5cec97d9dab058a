"""Batch upload over HTTP: stored once, durable before the answer, refused when not genuine."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, text

from clearing.auth.models import TerminalNonce
from clearing.ingest.models import IngestBatch, TapRecord, TapState
from clearing.registry.models import Terminal, TerminalStatus
from tests.clearing.apiharness import (
    SignedTerminal,
    World,
    batch_body,
    random_card_no,
    tap_record,
    world,
)

BACKENDS = ["pg_url", "sqlite_url"]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(request.param)


async def stored(w: World, terminal_id: str) -> tuple[int, int, int]:
    """(batches, tap records, nonces) stored for a terminal, read in a fresh transaction."""
    async with w.app.state.sessionmaker() as session:
        batches = await session.scalar(
            select(func.count())
            .select_from(IngestBatch)
            .where(IngestBatch.terminal_id == terminal_id)
        )
        records = await session.scalar(
            select(func.count()).select_from(TapRecord).where(TapRecord.terminal_id == terminal_id)
        )
        nonces = await session.scalar(
            select(func.count())
            .select_from(TerminalNonce)
            .where(TerminalNonce.terminal_id == terminal_id)
        )
    return int(batches or 0), int(records or 0), int(nonces or 0)


def records(card_no: str, seqs: range | list[int]) -> list[dict]:
    return [tap_record(card_no, seq, seq) for seq in seqs]


async def test_same_batch_twice_is_acknowledged_twice_and_stored_once(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        body = batch_body("b-1", records(random_card_no(), range(1, 4)))
        first = await w.terminal.post_batch(body)
        second = await w.terminal.post_batch(body)
        assert first.status_code == 200, first.text
        assert second.status_code == 200, second.text
        assert first.json()["duplicate"] is False
        assert second.json()["duplicate"] is True
        assert second.json()["received_at"] == first.json()["received_at"]
        batches, taps, _ = await stored(w, w.terminal.terminal_id)
        assert (batches, taps) == (1, 3)


async def test_raw_body_and_records_are_stored_exactly(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        card_no = random_card_no()
        body = batch_body("b-raw", records(card_no, [7, 8]))
        assert (await w.terminal.post_batch(body)).status_code == 200
        async with w.app.state.sessionmaker() as session:
            batch = (
                await session.execute(
                    select(IngestBatch).where(IngestBatch.terminal_id == w.terminal.terminal_id)
                )
            ).scalar_one()
            rows = (
                (
                    await session.execute(
                        select(TapRecord)
                        .where(TapRecord.batch_pk == batch.id)
                        .order_by(TapRecord.record_index)
                    )
                )
                .scalars()
                .all()
            )
        assert batch.body == body
        assert batch.record_count == 2 and batch.amount_fen_total == 400
        assert [(r.terminal_seq, r.card_no, r.state) for r in rows] == [
            (7, card_no, TapState.RECEIVED),
            (8, card_no, TapState.RECEIVED),
        ]
        assert rows[0].occurred_at.tzinfo is not None


async def test_same_batch_id_with_another_body_is_a_conflict(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        card_no = random_card_no()
        assert (
            await w.terminal.post_batch(batch_body("b-1", records(card_no, [1])))
        ).status_code == 200
        response = await w.terminal.post_batch(batch_body("b-1", records(card_no, [1, 2])))
        assert response.status_code == 409
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "batch_conflict"
        assert (await stored(w, w.terminal.terminal_id))[:2] == (1, 1)
        assert await seq_high(w, w.terminal.terminal_id) == 1  # the refused body's 2 is not seen


async def test_out_of_order_batches_are_all_stored_and_gaps_close(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        card_no = random_card_no()
        t = w.terminal
        first = await t.post_batch(batch_body("b-3", records(card_no, range(7, 10))))
        assert first.json()["sequence_gaps"] == []
        second = await t.post_batch(batch_body("b-1", records(card_no, range(1, 3))))
        assert second.json()["sequence_gaps"] == [{"from_seq": 3, "to_seq": 6}]
        third = await t.post_batch(batch_body("b-2", records(card_no, [3, 5])))
        assert third.json()["sequence_gaps"] == [
            {"from_seq": 4, "to_seq": 4},
            {"from_seq": 6, "to_seq": 6},
        ]
        gaps = await w.client.get(
            f"/v1/terminals/{t.terminal_id}/sequence-gaps", headers=w.auth("finance")
        )
        assert gaps.json() == third.json()["sequence_gaps"]
        assert await seq_high(w, t.terminal_id) == 9  # later, lower batches do not lower it
        last = await t.post_batch(batch_body("b-2b", records(card_no, [4, 6])))
        assert last.json()["sequence_gaps"] == []
        assert (await stored(w, t.terminal_id))[:2] == (4, 9)
        assert await seq_high(w, t.terminal_id) == 9


async def seq_high(w: World, terminal_id: str) -> int | None:
    """The highest serial received, as staff read it from the registry."""
    response = await w.client.get(f"/v1/terminals/{terminal_id}", headers=w.auth("finance"))
    assert response.status_code == 200, response.text
    return response.json()["seq_high"]


async def test_unsigned_batch_is_refused_and_stored_nowhere(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        body = batch_body("b-1", records(random_card_no(), [1]))
        path = f"/v1/terminals/{w.terminal.terminal_id}/batches"
        response = await w.client.post(
            path, content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 401
        assert response.json()["status"] == 401
        assert response.headers["www-authenticate"] == "Onecard-Signature"
        assert await stored(w, w.terminal.terminal_id) == (0, 0, 0)


async def test_wrongly_signed_batch_is_refused_and_stored_nowhere(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        forger = SignedTerminal(w.terminal.terminal_id, Ed25519PrivateKey.generate(), w.client)
        response = await forger.post_batch(batch_body("b-1", records(random_card_no(), [1])))
        assert response.status_code == 401
        assert await stored(w, w.terminal.terminal_id) == (0, 0, 0)


async def test_tampered_body_is_refused(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        card_no = random_card_no()
        body = batch_body("b-1", records(card_no, [1]))
        path = f"/v1/terminals/{w.terminal.terminal_id}/batches"
        headers = w.terminal.headers("POST", path, body)
        tampered = body.replace(b'"amount_fen": 200', b'"amount_fen": 2')
        assert tampered != body
        response = await w.client.post(path, content=tampered, headers=headers)
        assert response.status_code == 401
        assert await stored(w, w.terminal.terminal_id) == (0, 0, 0)


async def test_replayed_request_is_refused_and_stored_once(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        body = batch_body("b-1", records(random_card_no(), [1, 2]))
        path = f"/v1/terminals/{w.terminal.terminal_id}/batches"
        headers = w.terminal.headers("POST", path, body)
        assert (await w.client.post(path, content=body, headers=headers)).status_code == 200
        replay = await w.client.post(path, content=body, headers=headers)
        assert replay.status_code == 401
        assert "nonce" in replay.json()["detail"]
        assert await stored(w, w.terminal.terminal_id) == (1, 2, 1)


async def test_stale_timestamp_is_refused(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        body = batch_body("b-1", records(random_card_no(), [1]))
        path = f"/v1/terminals/{w.terminal.terminal_id}/batches"
        headers = w.terminal.headers("POST", path, body, ts=int(time.time()) - 301)
        assert (await w.client.post(path, content=body, headers=headers)).status_code == 401
        fresh = w.terminal.headers("POST", path, body, ts=int(time.time()) - 290)
        assert (await w.client.post(path, content=body, headers=fresh)).status_code == 200


async def test_other_terminals_batch_is_forbidden_and_stored_nowhere(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        other = await w.add_terminal()
        body = batch_body("b-1", records(random_card_no(), [1]))
        response = await other.post_batch(body, path_terminal=w.terminal.terminal_id)
        assert response.status_code == 403
        assert await stored(w, w.terminal.terminal_id) == (0, 0, 0)
        assert await stored(w, other.terminal_id) == (0, 0, 0)


async def test_suspended_terminal_is_forbidden(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        async with w.app.state.sessionmaker() as session:
            terminal = await session.get(Terminal, w.terminal.terminal_id)
            terminal.status = TerminalStatus.SUSPENDED
            await session.commit()
        response = await w.terminal.post_batch(batch_body("b-1", records(random_card_no(), [1])))
        assert response.status_code == 403
        assert await stored(w, w.terminal.terminal_id) == (0, 0, 0)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"batch_id": "b 1", "records": []}',
        json.dumps({"batch_id": "b-1", "records": [{"kind": "purchase"}]}).encode(),
        json.dumps({"batch_id": "b-1", "records": "x"}).encode(),
        b"[]",
    ],
)
async def test_bad_bodies_are_problems_not_500s(sqlite_url, tmp_path, body: bytes) -> None:
    async with world(sqlite_url, tmp_path) as w:
        response = await w.terminal.post_batch(body)
        assert response.status_code == 422, response.text
        problem = response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
        assert problem["code"] == "invalid_request" and problem["status"] == 422
        assert (await stored(w, w.terminal.terminal_id))[:2] == (0, 0)


async def test_bad_record_values_are_refused(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        card_no = random_card_no()
        for field, value in [
            ("card_no", "12345"),
            ("terminal_seq", 0),
            ("card_counter", 65536),
            ("amount_fen", -1),
            ("occurred_at", "2026-11-28T08:00:00"),  # no zone
            ("tac", "XYZ"),
        ]:
            record = tap_record(card_no, 1, 1)
            record[field] = value
            response = await w.terminal.post_batch(batch_body("b-1", [record]))
            assert response.status_code == 422, (field, response.text)
        assert (await stored(w, w.terminal.terminal_id))[:2] == (0, 0)


async def test_batch_record_count_bound_both_sides(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        card_no = random_card_no()
        at_bound = batch_body("b-max", records(card_no, range(1, 5001)))
        assert (await w.terminal.post_batch(at_bound)).status_code == 200
        over = batch_body("b-over", records(card_no, range(5001, 10002)))
        refused = await w.terminal.post_batch(over)
        assert refused.status_code == 413 and refused.json()["code"] == "payload_too_large"
        assert (await stored(w, w.terminal.terminal_id))[:2] == (1, 5000)


async def test_oversized_body_is_413(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        record = tap_record(random_card_no(), 1, 1)
        record["padding"] = "x" * (4 * 1024 * 1024)
        response = await w.terminal.post_batch(batch_body("b-big", [record]))
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"
        assert (await stored(w, w.terminal.terminal_id))[:2] == (0, 0)


async def test_authentication_comes_before_body_validation(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        path = f"/v1/terminals/{w.terminal.terminal_id}/batches"
        for body in (b"not json", b'{"batch_id": "x", "records": [{}]}'):
            response = await w.client.post(
                path, content=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 401, response.text
            assert "errors" not in response.json()


async def test_concurrent_uploads_of_one_batch_store_it_once(pg_url, tmp_path) -> None:
    async with world(pg_url, tmp_path) as w:
        body = batch_body("b-race", records(random_card_no(), range(1, 51)))
        responses = await asyncio.gather(*(w.terminal.post_batch(body) for _ in range(4)))
        assert [r.status_code for r in responses] == [200] * 4
        assert sorted(r.json()["duplicate"] for r in responses) == [False, True, True, True]
        assert (await stored(w, w.terminal.terminal_id))[:2] == (1, 50)


async def test_concurrent_uploads_of_one_terminal_leave_exact_gaps(pg_url, tmp_path) -> None:
    """Uploads of one terminal racing each other are stored one after the other: each sees the
    serials of those stored before it, so the gaps end exact and the highest serial is the top."""
    async with world(pg_url, tmp_path) as w:
        card_no = random_card_no()
        parts = [range(31, 41), range(1, 11), range(21, 31), range(51, 61)]
        bodies = [batch_body(f"b-{k}", records(card_no, seqs)) for k, seqs in enumerate(parts)]
        responses = await asyncio.gather(*(w.terminal.post_batch(body) for body in bodies))
        assert [r.status_code for r in responses] == [200] * 4
        gaps = await w.client.get(
            f"/v1/terminals/{w.terminal.terminal_id}/sequence-gaps", headers=w.auth("finance")
        )
        assert gaps.json() == [{"from_seq": 11, "to_seq": 20}, {"from_seq": 41, "to_seq": 50}]
        assert await seq_high(w, w.terminal.terminal_id) == 60
        assert (await stored(w, w.terminal.terminal_id))[:2] == (4, 40)


async def test_bodies_are_kept_compressed_with_lz4(pg_url, tmp_path) -> None:
    """PostgreSQL compresses a stored body with LZ4 (migration 0011_bodylz4; its default, pglz,
    cost ~2 us of the database's CPU per record), and the body reads back byte for byte."""
    async with world(pg_url, tmp_path) as w:
        body = batch_body("b-big", records(random_card_no(), range(1, 201)))
        assert len(body) > 8192  # large enough for PostgreSQL to compress it at all
        assert (await w.terminal.post_batch(body)).status_code == 200
        async with w.app.state.sessionmaker() as session:
            method, stored = (
                await session.execute(
                    text(
                        "SELECT pg_column_compression(body), body FROM ingest_batches"
                        " WHERE terminal_id = :terminal"
                    ),
                    {"terminal": w.terminal.terminal_id},
                )
            ).one()
        assert (method, bytes(stored)) == ("lz4", body)


async def test_oversized_chunked_body_without_length_is_413(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        chunk = b"x" * (1024 * 1024)

        async def body():
            for _ in range(5):
                yield chunk

        path = f"/v1/terminals/{w.terminal.terminal_id}/batches"
        response = await w.client.post(path, content=body())
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"
