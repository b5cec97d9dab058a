"""Batch ingestion: store a terminal's signed upload raw and exactly once, stage its records.

The raw body goes into `ingest_batches` and each record into `tap_records` (state received)
in the caller's transaction; the endpoint commits before it acknowledges. A batch re-sent
with the same body is acknowledged again and stored once; another body under the same
batch_id is a conflict. Never commits; never judges a record (that is the engine's job).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from clearing.db.base import utc_now
from clearing.errors import Conflict, NotFound
from clearing.ingest import repository
from clearing.ingest.gaps import Gap, update_gaps
from clearing.ingest.models import IngestBatch, TapState
from clearing.ingest.schemas import BatchUpload, StagedRow
from ledger.errors import InvariantError


def _staged_rows(
    upload: BatchUpload, batch_pk: int, terminal_id: str, now: datetime
) -> list[StagedRow]:
    """One row per record (the hot path: no dicts, no ORM objects)."""
    received = TapState.RECEIVED.value
    return [
        StagedRow(
            batch_pk, index, terminal_id, r.kind.value, r.status.value, r.terminal_seq,
            r.card_no, r.card_counter, r.txn_type, r.amount_fen, r.balance_before_fen,
            r.balance_after_fen, r.occurred_at, r.tac.upper() if r.tac is not None else None,
            r.card_type, r.rider_category, r.full_fare_fen, r.fare_rule, r.route_id, r.stop_id,
            r.insured_fen, r.visit_id, r.load_id, r.offline_fallback, r.deny_list_version,
            r.action_list_version, received, None, now, now,
        )
        for index, r in enumerate(upload.records)
    ]  # fmt: skip


class BatchConflict(Conflict):
    code = "batch_conflict"
    title = "Another batch was stored under this batch_id"


@dataclass(frozen=True, slots=True)
class StoredBatch:
    batch_id: str
    records: int
    duplicate: bool
    received_at: datetime
    sequence_gaps: tuple[Gap, ...]


async def store_batch(
    session: AsyncSession,
    *,
    terminal_id: str,
    body: bytes,
    upload: BatchUpload,
    now: datetime | None = None,
) -> StoredBatch:
    """Store one upload (raw and staged) unless this exact batch is already stored."""
    now = now or utc_now()
    if session.new or session.dirty or session.deleted:
        await session.flush()  # the statements below go straight to the driver on PostgreSQL
    if not await repository.lock_terminal(session, terminal_id):
        raise NotFound(f"no terminal {terminal_id}")
    body_sha256 = hashlib.sha256(body).hexdigest()
    records = upload.records
    seqs = [record.terminal_seq for record in records]
    claimed = await repository.claim_batch(
        session,
        repository.NewBatch(
            terminal_id,
            upload.batch_id,
            body,
            body_sha256,
            len(records),
            sum(record.amount_fen for record in records),
            now,
            max(seqs) if seqs else None,
        ),
    )
    if claimed.batch_pk is None:
        return await _stored_already(session, terminal_id, upload.batch_id, body_sha256)
    await repository.insert_tap_records(
        session, StagedRow._fields, _staged_rows(upload, claimed.batch_pk, terminal_id, now)
    )
    open_gaps = await _record_gaps(session, terminal_id, claimed, seqs, now)
    return StoredBatch(upload.batch_id, len(records), False, now, tuple(open_gaps))


async def _stored_already(
    session: AsyncSession, terminal_id: str, batch_id: str, body_sha256: str
) -> StoredBatch:
    """The answer to a batch_id stored before: the same body again is a duplicate (stored once,
    acknowledged again), another body a conflict."""
    existing = await repository.batch(session, terminal_id, batch_id)
    if existing is None:
        raise InvariantError(f"batch {batch_id} of {terminal_id} was claimed but is not stored")
    if existing.body_sha256 != body_sha256:
        raise BatchConflict(
            f"batch {batch_id} was already stored with a different body; "
            "a corrected batch needs a new batch_id"
        )
    stored_gaps = await repository.open_gaps(session, terminal_id)
    return StoredBatch(
        existing.batch_id,
        existing.record_count,
        True,
        existing.received_at,
        tuple(Gap(gap.from_seq, gap.to_seq) for gap in stored_gaps),
    )


async def _record_gaps(
    session: AsyncSession,
    terminal_id: str,
    claimed: repository.Claimed,
    seqs: list[int],
    now: datetime,
) -> list[Gap]:
    detected = {(low, high): at for low, high, at in claimed.gaps}
    gaps, _ = update_gaps((Gap(low, high) for low, high, _ in claimed.gaps), claimed.seen, seqs)
    if [(gap.from_seq, gap.to_seq) for gap in gaps] != list(detected):
        await repository.replace_gaps(
            session,
            terminal_id,
            [
                {
                    "terminal_id": terminal_id,
                    "from_seq": gap.from_seq,
                    "to_seq": gap.to_seq,
                    "detected_at": detected.get((gap.from_seq, gap.to_seq), now),
                }
                for gap in gaps
            ],
        )
    return gaps


async def sequence_gaps(session: AsyncSession, terminal_id: str) -> list[Gap]:
    return [
        Gap(gap.from_seq, gap.to_seq) for gap in await repository.open_gaps(session, terminal_id)
    ]


async def list_batches(
    session: AsyncSession, *, terminal_ids: list[str] | None, limit: int, offset: int
) -> list[IngestBatch]:
    return await repository.list_batches(
        session, terminal_ids=terminal_ids, limit=limit, offset=offset
    )
