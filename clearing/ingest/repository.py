"""Every query of ingestion: stored batches, staged tap records, sequence gaps."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.ingest.models import IngestBatch, SequenceGap, TapRecord, TapState
from ledger.errors import InvariantError

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
_OPEN_GAPS = (
    select(SequenceGap)
    .where(SequenceGap.terminal_id == bindparam("terminal_id"))
    .order_by(SequenceGap.from_seq)
    .execution_options(populate_existing=True)
)


async def batch(session: AsyncSession, terminal_id: str, batch_id: str) -> IngestBatch | None:
    result = await session.execute(_BATCH, {"terminal_id": terminal_id, "batch_id": batch_id})
    return result.scalar_one_or_none()


async def add_batch(session: AsyncSession, row: IngestBatch) -> IngestBatch:
    session.add(row)
    await session.flush()
    return row


async def insert_tap_records(
    session: AsyncSession, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """One statement per batch. PostgreSQL: COPY on the session's own connection, inside its
    transaction (ORM bulk insert measured ~15k rows/s here); other backends: Core executemany.
    `rows` hold plain values (strings, ints, aware datetimes) in the order of `columns`."""
    if not rows:
        return
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        if driver is None:
            raise InvariantError("an asyncpg connection without its driver connection")
        await driver.copy_records_to_table(TapRecord.__tablename__, records=rows, columns=columns)
        return
    await connection.execute(
        TapRecord.__table__.insert(), [dict(zip(columns, row, strict=True)) for row in rows]
    )


async def seq_range(session: AsyncSession, terminal_id: str) -> tuple[int, int] | None:
    result = await session.execute(_SEQ_RANGE, {"terminal_id": terminal_id})
    low, high = result.one()
    if low is None or high is None:
        return None
    return int(low), int(high)


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
