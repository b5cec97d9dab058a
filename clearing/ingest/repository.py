"""Every query of ingestion: stored batches, staged tap records, sequence gaps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.ingest.models import IngestBatch, SequenceGap, TapRecord, TapState
from clearing.registry.models import Terminal
from ledger.pgconn import asyncpg_of

PAGE_MAX = 500

# The statements of every upload, built once: building a statement's expression costs more
# Python than SQLAlchemy's compiled-statement cache saves (about an eighth of ingest's Python
# at ~100 records an upload, measured by py-spy).
_BATCH = select(IngestBatch).where(
    IngestBatch.terminal_id == bindparam("terminal_id"),
    IngestBatch.batch_id == bindparam("batch_id"),
)
_SEQ_RANGE = select(func.min(TapRecord.terminal_seq), func.max(TapRecord.terminal_seq)).where(
    TapRecord.terminal_id == bindparam("terminal_id")
)
_LOCK = (
    select(Terminal.terminal_id)
    .where(Terminal.terminal_id == bindparam("terminal_id"))
    .with_for_update(key_share=True)
)
_RAISE_SEQ_HIGH = (
    update(Terminal)
    .where(Terminal.terminal_id == bindparam("terminal"))
    .where(or_(Terminal.seq_high.is_(None), Terminal.seq_high < bindparam("high")))
    .values(seq_high=bindparam("high"))
)
_OPEN_GAPS = (
    select(SequenceGap)
    .where(SequenceGap.terminal_id == bindparam("terminal_id"))
    .order_by(SequenceGap.from_seq)
    .execution_options(populate_existing=True)
)

# PostgreSQL: each upload's statements straight to asyncpg (py-spy put about a quarter of
# ingestion's Python in SQLAlchemy's handling of the six ORM statements). The batch row, the terminal's highest serial and the
# reads of the serials seen before in one statement: its INSERT and UPDATE run whatever the
# SELECT reads, and the SELECT sees the table as it was before them (one snapshot).
_PG_LOCK = "SELECT 1 FROM terminals WHERE terminal_id = $1 FOR NO KEY UPDATE"
_PG_CLAIM = """
WITH added AS (
    INSERT INTO ingest_batches
        (terminal_id, batch_id, body, body_sha256, record_count, amount_fen_total, received_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (terminal_id, batch_id) DO NOTHING
    RETURNING id
), raised AS (
    UPDATE terminals SET seq_high = greatest(coalesce(seq_high, $8::bigint), $8::bigint)
    WHERE terminal_id = $1 AND $8::bigint IS NOT NULL AND EXISTS (SELECT FROM added)
)
SELECT
    (SELECT id FROM added),
    (SELECT min(terminal_seq) FROM tap_records WHERE terminal_id = $1),
    (SELECT max(terminal_seq) FROM tap_records WHERE terminal_id = $1),
    ARRAY(SELECT from_seq FROM sequence_gaps WHERE terminal_id = $1 ORDER BY from_seq),
    ARRAY(SELECT to_seq FROM sequence_gaps WHERE terminal_id = $1 ORDER BY from_seq),
    ARRAY(SELECT detected_at FROM sequence_gaps WHERE terminal_id = $1 ORDER BY from_seq)
"""


@dataclass(frozen=True, slots=True)
class NewBatch:
    """An upload's `ingest_batches` row, and the highest serial among its records."""

    terminal_id: str
    batch_id: str
    body: bytes
    body_sha256: str
    record_count: int
    amount_fen_total: int
    received_at: datetime
    seq_high: int | None


@dataclass(frozen=True, slots=True)
class Claimed:
    """What `claim_batch` found and did: the new batch's id (None: that batch_id was already
    stored, nothing written), and the terminal's serials as they were before this batch."""

    batch_pk: int | None
    seen: tuple[int, int] | None
    gaps: list[tuple[int, int, datetime]]  # from_seq, to_seq, detected_at, in from_seq order


async def lock_terminal(session: AsyncSession, terminal_id: str) -> bool:
    """Lock the terminal's row for the rest of the transaction (False: no such terminal). One
    terminal's uploads are stored one at a time, so dedup and gaps stay exact.

    FOR NO KEY UPDATE: it serializes writers of this terminal but not the KEY SHARE locks that
    foreign keys to it take (the request's nonce row); FOR UPDATE deadlocked two uploads."""
    if _on_postgresql(session):
        asyncpg = await _asyncpg(session)
        return await asyncpg.fetchval(_PG_LOCK, terminal_id) is not None
    result = await session.execute(_LOCK, {"terminal_id": terminal_id})
    return result.scalar_one_or_none() is not None


async def claim_batch(session: AsyncSession, new: NewBatch) -> Claimed:
    """Store the batch row unless its batch_id is stored already, raise the terminal's highest
    serial, and read the serials seen and the open gaps before it: one statement on PostgreSQL.
    Call with the terminal locked (`lock_terminal`, a statement of its own, so that what this
    reads includes every upload of the terminal committed before the lock was granted)."""
    if _on_postgresql(session):
        asyncpg = await _asyncpg(session)
        row = await asyncpg.fetchrow(
            _PG_CLAIM,
            new.terminal_id,
            new.batch_id,
            new.body,
            new.body_sha256,
            new.record_count,
            new.amount_fen_total,
            new.received_at,
            new.seq_high,
        )
        pk, low, high, froms, tos, detected = row
        return Claimed(pk, _seen(low, high), list(zip(froms, tos, detected, strict=True)))
    existing = await batch(session, new.terminal_id, new.batch_id)
    if existing is not None:
        return Claimed(None, None, [])
    low, high = (await session.execute(_SEQ_RANGE, {"terminal_id": new.terminal_id})).one()
    gaps = await open_gaps(session, new.terminal_id)
    added = await session.execute(
        insert(IngestBatch).returning(IngestBatch.id),
        {
            "terminal_id": new.terminal_id,
            "batch_id": new.batch_id,
            "body": new.body,
            "body_sha256": new.body_sha256,
            "record_count": new.record_count,
            "amount_fen_total": new.amount_fen_total,
            "received_at": new.received_at,
        },
    )
    if new.seq_high is not None:
        await session.execute(_RAISE_SEQ_HIGH, {"terminal": new.terminal_id, "high": new.seq_high})
    return Claimed(
        added.scalar_one(),
        _seen(low, high),
        [(gap.from_seq, gap.to_seq, gap.detected_at) for gap in gaps],
    )


def _seen(low: int | None, high: int | None) -> tuple[int, int] | None:
    return None if low is None or high is None else (int(low), int(high))


async def batch(session: AsyncSession, terminal_id: str, batch_id: str) -> IngestBatch | None:
    result = await session.execute(_BATCH, {"terminal_id": terminal_id, "batch_id": batch_id})
    return result.scalar_one_or_none()


async def insert_tap_records(
    session: AsyncSession, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """One statement per batch. PostgreSQL: COPY on the session's own connection, inside its
    transaction (ORM bulk insert measured ~15k rows/s here); other backends: Core executemany.
    `rows` hold plain values (strings, ints, aware datetimes) in the order of `columns`."""
    if not rows:
        return
    if _on_postgresql(session):
        asyncpg = await _asyncpg(session)
        await asyncpg.copy_records_to_table(TapRecord.__tablename__, records=rows, columns=columns)
        return
    await session.execute(
        TapRecord.__table__.insert(), [dict(zip(columns, row, strict=True)) for row in rows]
    )


async def open_gaps(session: AsyncSession, terminal_id: str) -> list[SequenceGap]:
    result = await session.execute(_OPEN_GAPS, {"terminal_id": terminal_id})
    return list(result.scalars())


async def replace_gaps(session: AsyncSession, terminal_id: str, gaps: list[dict[str, Any]]) -> None:
    """Core statements (not the ORM): the old rows may still sit in the identity map."""
    await session.execute(
        delete(SequenceGap)
        .where(SequenceGap.terminal_id == terminal_id)
        .execution_options(synchronize_session=False)
    )
    if gaps:
        await session.execute(insert(SequenceGap), gaps)


def _on_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def _asyncpg(session: AsyncSession) -> Any:
    return await asyncpg_of(await session.connection())


async def list_batches(
    session: AsyncSession, *, terminal_ids: list[str] | None, limit: int, offset: int
) -> list[IngestBatch]:
    query = (
        select(IngestBatch)
        .order_by(IngestBatch.id.desc())
        .limit(min(limit, PAGE_MAX))
        .offset(offset)
    )
    if terminal_ids is not None:
        query = query.where(IngestBatch.terminal_id.in_(terminal_ids))
    return list((await session.execute(query)).scalars())


async def received_tap_count(session: AsyncSession, card_no: str) -> int:
    """Records of this card still waiting for the clearing engine."""
    result = await session.execute(
        select(func.count())
        .select_from(TapRecord)
        .where(TapRecord.card_no == card_no, TapRecord.state == TapState.RECEIVED)
    )
    return int(result.scalar_one())


async def taps_at(session: AsyncSession, terminal_id: str, terminal_seq: int) -> list[TapRecord]:
    """The uploaded records of one terminal sequence number (re-uploads may repeat one)."""
    result = await session.execute(
        select(TapRecord)
        .where(TapRecord.terminal_id == terminal_id, TapRecord.terminal_seq == terminal_seq)
        .order_by(TapRecord.id)
    )
    return list(result.scalars())
