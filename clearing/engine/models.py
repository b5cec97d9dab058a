"""Tables of the clearing engine (created by migration 0003_clearing; these must match it).

- `clearing_runs`: one row per run of the engine, with its counters.
- `cleared_taps`: one row per posted tap; its primary key (card, purse, card counter) and its
  unique (terminal, terminal_seq) are what make posting exactly-once across runs and crashes
  (the row commits in the same transaction as the ledger transfers).
- `tap_dispositions`: records cleared without moving money (duplicates, void torn taps).
- `quarantine_actions`: the quarantine's audit trail, every action on a quarantined record, by
  whom and why. Insert-only; the record's current state lives on `tap_records`. The engine
  writes it (quarantined, resolved) and so does finance staff's quarantine (released, written
  off), which builds on the engine.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from clearing.db.base import Base, BigId, UtcDateTime


class RunState(enum.StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"  # stopped by a database failure, or seen stale (its worker died)


class ClearingRun(Base):
    __tablename__ = "clearing_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    trigger: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # RunState
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    chunks: Mapped[int] = mapped_column(Integer)
    records_seen: Mapped[int] = mapped_column(BigInteger)
    posted: Mapped[int] = mapped_column(BigInteger)
    duplicates: Mapped[int] = mapped_column(BigInteger)
    voided: Mapped[int] = mapped_column(BigInteger)
    quarantined: Mapped[int] = mapped_column(BigInteger)
    amount_fen_posted: Mapped[int] = mapped_column(BigInteger)


class ClearedTap(Base):
    __tablename__ = "cleared_taps"
    # BRIN on PostgreSQL (migration 0013_dayindexes): the nightly checks read one day of it.
    __table_args__ = (
        Index(
            "ix_cleared_taps_occurred_at",
            "occurred_at",
            postgresql_using="brin",
            postgresql_with={"autosummarize": "on"},
        ),
    )

    card_no: Mapped[str] = mapped_column(String(16), primary_key=True)
    purse: Mapped[str] = mapped_column(String(8), primary_key=True)
    card_counter: Mapped[int] = mapped_column(Integer, primary_key=True)
    tap_record_id: Mapped[int] = mapped_column(BigId, unique=True)
    terminal_id: Mapped[str] = mapped_column(String(12))
    terminal_seq: Mapped[int] = mapped_column(BigInteger)
    participant_code: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    txn_type: Mapped[int] = mapped_column(Integer)
    card_type: Mapped[str] = mapped_column(String(16))
    route_id: Mapped[str | None] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    balance_before_fen: Mapped[int] = mapped_column(BigInteger)
    balance_after_fen: Mapped[int] = mapped_column(BigInteger)
    full_fare_fen: Mapped[int] = mapped_column(BigInteger)
    subsidy_fen: Mapped[int] = mapped_column(BigInteger)
    subsidy_scheme: Mapped[str | None] = mapped_column(String(32))
    insured_fen: Mapped[int] = mapped_column(BigInteger)
    insurer_scheme: Mapped[str | None] = mapped_column(String(32))
    visit_id: Mapped[str | None] = mapped_column(String(64))
    load_id: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    business_day: Mapped[date] = mapped_column(Date)
    settlement_day: Mapped[date] = mapped_column(Date)
    outcome: Mapped[str] = mapped_column(String(16))
    transfer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    claim_transfer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    run_id: Mapped[int] = mapped_column(BigId)
    cleared_at: Mapped[datetime] = mapped_column(UtcDateTime())


class TapDisposition(Base):
    __tablename__ = "tap_dispositions"

    tap_record_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    disposition: Mapped[str] = mapped_column(String(16))  # duplicate | grey_void
    duplicate_of: Mapped[int | None] = mapped_column(BigId)
    run_id: Mapped[int] = mapped_column(BigId)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime())


ENGINE_ACTOR = "engine"


class QuarantineAction(enum.StrEnum):
    QUARANTINED = "quarantined"  # the engine put the record in quarantine (reason)
    RELEASED = "released"  # finance staff sent it back to clearing (optionally overriding)
    WRITTEN_OFF = "written_off"  # finance staff closed it: it moves no money
    RESOLVED = "resolved"  # the engine cleared it on a later run (torn tap proven, ...)


class QuarantineActionRow(Base):
    __tablename__ = "quarantine_actions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tap_record_id: Mapped[int] = mapped_column(BigId, index=True)
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    override: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
