"""Tables of batch ingestion: raw uploaded batches, the tap-record staging table, sequence gaps.

For the clearing engine (migration 0003 builds on these; all created by 0002_registry):

- `ingest_batches`: one row per (terminal_id, batch_id), the raw request body exactly as
  received (`body`, bytes) and its `body_sha256`; committed before the terminal gets its 200.
- `tap_records`: one row per record of a stored batch, every field of the protocol's tap record
  (docs/terminal-protocol.md), plus `batch_pk` → ingest_batches.id, `record_index` (position
  in the batch), `state` (`TapState`: received → cleared | quarantined → written_off, or
  quarantined → received again on release), `quarantine_reason` (free VARCHAR(32): the engine
  owns its reason enum), `received_at` and `state_changed_at`. Ingestion only ever inserts
  rows in state `received`; only the engine changes `state` (and quarantine's release and
  write-off). `state` is in no index, so its change is a HOT update (fillfactor 45 on
  PostgreSQL: migration 0010_tapopen). Nothing is unique across
  batches: the same record re-sent inside another batch is staged twice and deduplicated by
  the engine on (card_no, card_counter) and (terminal_id, terminal_seq) (both indexed).
- `tap_open`: the records in an open state (`received` or `quarantined`), kept by triggers on
  `tap_records` for every writer (0010_tapopen): id, state and the card's shard (PostgreSQL's
  `hashtext`; 0 on SQLite). It serves "next N received records in arrival order" and every
  quarantine listing.
- `sequence_gaps`: the open holes in each terminal's terminal_seq (from_seq..to_seq
  inclusive), recomputed on every stored batch; `terminals.seq_high` is the highest seen.

All tables map onto `clearing.db.base.Base` (naming convention, UTC timestamps).
Errors raised by services are subclasses of `clearing.errors.ClearingError` (stable
`code`, HTTP `status`); the API maps them to RFC 9457 problems in clearing/http/problems.py.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from clearing.db.base import Base, BigId, UtcDateTime, str_enum
from clearing.records import RecordStatus, TapKind, TapState

__all__ = [
    "Base",
    "IngestBatch",
    "OPEN_RECORDS",
    "SequenceGap",
    "TapKind",
    "TapOpen",
    "TapRecord",
    "TapState",
    "RecordStatus",
]


class IngestBatch(Base):
    """One uploaded batch, stored raw and exactly once per (terminal, batch_id)."""

    __tablename__ = "ingest_batches"
    __table_args__ = (UniqueConstraint("terminal_id", "batch_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"))
    batch_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    body_sha256: Mapped[str] = mapped_column(String(64))
    record_count: Mapped[int] = mapped_column(Integer)
    amount_fen_total: Mapped[int] = mapped_column(BigInteger)  # sum of amount_fen, for recon
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class TapRecord(Base):
    """One journal record as uploaded, staged for the clearing engine."""

    __tablename__ = "tap_records"
    __table_args__ = (
        UniqueConstraint("batch_pk", "record_index"),
        Index("ix_tap_records_card_no_card_counter", "card_no", "card_counter"),
        Index("ix_tap_records_terminal_id_terminal_seq", "terminal_id", "terminal_seq"),
        # BRIN on PostgreSQL (migration 0013_dayindexes): the nightly checks read one day of it.
        Index(
            "ix_tap_records_occurred_at",
            "occurred_at",
            postgresql_using="brin",
            postgresql_with={"autosummarize": "on"},
        ),
        {"postgresql_with": {"fillfactor": 45}},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_pk: Mapped[int] = mapped_column(ForeignKey("ingest_batches.id"))
    record_index: Mapped[int] = mapped_column(Integer)
    terminal_id: Mapped[str] = mapped_column(String(12))
    kind: Mapped[TapKind] = mapped_column(str_enum(TapKind, 16))
    status: Mapped[RecordStatus] = mapped_column(str_enum(RecordStatus, 16))
    terminal_seq: Mapped[int] = mapped_column(BigInteger)
    card_no: Mapped[str] = mapped_column(String(16))
    card_counter: Mapped[int] = mapped_column(Integer)
    txn_type: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    balance_before_fen: Mapped[int] = mapped_column(BigInteger)
    balance_after_fen: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    tac: Mapped[str | None] = mapped_column(String(8))
    card_type: Mapped[str] = mapped_column(String(16))
    rider_category: Mapped[str] = mapped_column(String(64))
    full_fare_fen: Mapped[int] = mapped_column(BigInteger)
    fare_rule: Mapped[str] = mapped_column(String(64))
    route_id: Mapped[str | None] = mapped_column(String(64))
    stop_id: Mapped[str | None] = mapped_column(String(64))
    insured_fen: Mapped[int] = mapped_column(BigInteger)
    visit_id: Mapped[str | None] = mapped_column(String(64))
    load_id: Mapped[str | None] = mapped_column(String(64))
    offline_fallback: Mapped[bool] = mapped_column(Boolean)
    deny_list_version: Mapped[int] = mapped_column(BigInteger)
    action_list_version: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[TapState] = mapped_column(str_enum(TapState, 16))
    quarantine_reason: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    state_changed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class TapOpen(Base):
    """A record clearing is not done with: received (waiting) or quarantined (held). Written by
    the database's triggers on tap_records only."""

    __tablename__ = "tap_open"
    __table_args__ = (
        CheckConstraint("state IN ('received', 'quarantined')", name="state"),
        Index("ix_tap_open_state_tap_record_id", "state", "tap_record_id"),
    )

    tap_record_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    state: Mapped[TapState] = mapped_column(str_enum(TapState, 16))
    shard: Mapped[int] = mapped_column(SmallInteger)


# Each open record joined to its row: select from it and filter on `TapOpen.state`.
OPEN_RECORDS = TapRecord.__table__.join(
    TapOpen.__table__, TapOpen.__table__.c.tap_record_id == TapRecord.__table__.c.id
)


class SequenceGap(Base):
    """An open hole in a terminal's terminal_seq: from_seq..to_seq (inclusive) never received."""

    __tablename__ = "sequence_gaps"

    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"), primary_key=True)
    from_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    to_seq: Mapped[int] = mapped_column(BigInteger)
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime())
