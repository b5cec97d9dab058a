"""The quarantine's audit trail (migration 0003_clearing): every action on a quarantined
record, by whom and why. Insert-only; the record's current state lives on `tap_records`."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clearing.db.base import Base, BigId, UtcDateTime

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
