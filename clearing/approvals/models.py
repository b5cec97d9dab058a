"""The table of approval requests: what was asked, by whom, and who decided it, when and why.

Created by migration 0006_console (kinds widened by 0007_breakapproval); this class must match
it. A row is its own audit trail: it is written when asked and once more when decided, never
after. The database itself refuses a row decided by the person who asked
(ck_approval_requests_second_person).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from clearing.db.base import Base, BigId, UtcDateTime, str_enum


class ApprovalKind(enum.StrEnum):
    WRITE_OFF = "write_off"  # target: a quarantined tap record's id
    CARD_REFUND = "card_refund"  # target: a returned card's number (paid_by: cash or bank)
    TOPUP_REFUND = "topup_refund"  # target: an undelivered top-up's id
    EARLY_SETTLEMENT = "early_settlement"  # target: the current business day, before cut-off
    BREAK_WRITE_OFF = "break_write_off"  # target: an open reconciliation break's id (0007)


class ApprovalState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"  # and carried out, in the same transaction
    REJECTED = "rejected"


class ApprovalRequest(Base):
    __tablename__ = "approval_requests"
    __table_args__ = (
        Index("ix_approval_requests_state", "state", "id"),
        Index(
            "uq_approval_requests_pending_target",
            "kind",
            "target",
            unique=True,
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[ApprovalKind] = mapped_column(str_enum(ApprovalKind, 20))
    target: Mapped[str] = mapped_column(String(64))
    paid_by: Mapped[str | None] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(2000))
    state: Mapped[ApprovalState] = mapped_column(str_enum(ApprovalState, 10))
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    decision_note: Mapped[str | None] = mapped_column(String(2000))
    outcome: Mapped[str | None] = mapped_column(String(400))
