"""The tables reconciliation writes (and only these): runs, their match counts, breaks and the
history of every break. Created by migration 0005_recon; SQLAlchemy Core on its own metadata, as
insight does. Nothing here is a ledger row: reconciliation never moves money.

- `recon_runs`: one row per run of a business day (a re-run is a new row).
- `recon_matches`: per run and check, how many items it looked at and how many matched by
  themselves (the auto-match rate), and how many breaks it found.
- `recon_breaks`: one row per fault, unique on (kind, key) across runs: a re-run finds the same
  row again, keeps its status, assignee and history, and closes it when the data resolves it.
- `recon_break_events`: insert-only history: who did what to a break, when, and why.
"""

from __future__ import annotations

import enum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from clearing.db.base import NAMING_CONVENTION, BigId, UtcDateTime

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RunState(enum.StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class BreakStatus(enum.StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    EXPLAINED = "explained"
    RESOLVED = "resolved"
    WRITTEN_OFF = "written_off"

    @property
    def closed(self) -> bool:
        return self in (BreakStatus.RESOLVED, BreakStatus.WRITTEN_OFF)


OPEN_STATUSES = (BreakStatus.OPEN, BreakStatus.ASSIGNED, BreakStatus.EXPLAINED)


class EventAction(enum.StrEnum):
    FOUND = "found"  # a run found it the first time
    REOPENED = "reopened"  # a run found again a break it had closed by itself
    CHANGED = "changed"  # a run found it with another amount
    ASSIGNED = "assigned"
    EXPLAINED = "explained"
    RESOLVED = "resolved"  # by finance staff, or by a run when the data no longer shows it
    WRITTEN_OFF = "written_off"
    CARD_DENIED = "card_denied"  # finance confirmed a suspected clone: the card is deny-listed


RUN_ACTOR = "reconciliation"  # the actor of what a run does to a break

runs = Table(
    "recon_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("business_day", Date(), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("breaks_found", Integer(), nullable=False),
    Column("breaks_new", Integer(), nullable=False),
    Column("breaks_closed", Integer(), nullable=False),
    Column("breaks_open", Integer(), nullable=False),
    # The ledger time the run's ledger check read, [since, until) (reconciliation.repository.
    # ledger_window): windows of successive days chain. NULL on runs before migration 0014.
    Column("ledger_since_ns", BigInteger(), nullable=True),
    Column("ledger_until_ns", BigInteger(), nullable=True),
    # It also checked every account against its last entry (the weekly sweep).
    Column("ledger_accounts_swept", Boolean(), nullable=False, server_default=false()),
    Index("ix_recon_runs_business_day", "business_day"),
)

matches = Table(
    "recon_matches",
    metadata,
    Column("run_id", BigId, ForeignKey("recon_runs.id"), primary_key=True),
    Column("check_name", String(32), primary_key=True),
    Column("matched", BigInteger(), nullable=False),
    Column("total", BigInteger(), nullable=False),
    Column("breaks", Integer(), nullable=False),
    Column("seconds", Float(), nullable=False),
)

breaks = Table(
    "recon_breaks",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("key", String(200), nullable=False),
    Column("scope", String(8), nullable=False),
    Column("business_day", Date(), nullable=False),
    Column("check_name", String(32), nullable=False),
    Column("amount_fen", BigInteger(), nullable=False),
    Column("counterpart", String(100), nullable=False),
    Column("details", JSON(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("assignee", String(100), nullable=True),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("last_run_id", BigId, nullable=False),
    Column("closed_at", UtcDateTime(), nullable=True),
    Column("closed_by", String(100), nullable=True),  # RUN_ACTOR when the data resolved it
    UniqueConstraint("kind", "key", name="uq_recon_breaks_kind_key"),
    Index("ix_recon_breaks_status_kind", "status", "kind"),
    Index("ix_recon_breaks_business_day", "business_day"),
)

break_events = Table(
    "recon_break_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("break_id", BigId, ForeignKey("recon_breaks.id"), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # the break's status after the action
    Column("note", Text(), nullable=False),
    Column("run_id", BigId, nullable=True),
    Index("ix_recon_break_events_break_id", "break_id"),
)
