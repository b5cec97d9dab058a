"""Tables of authentication: staff/resident bearer tokens (stored hashed) and terminal nonces.

A token's secret is never stored: only its SHA-256. A nonce row exists only for a request
whose signature verified, and goes with that request's transaction (refused → not stored).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from clearing.db.base import Base, UtcDateTime, str_enum


class Role(enum.StrEnum):
    FINANCE = "finance"
    OPERATOR = "operator"
    ADMIN = "admin"
    RESIDENT = "resident"
    PLANNER = "planner"  # reads insight releases (aggregates only)


class ApiToken(Base):
    """A bearer token: `role` and `subject` (participant code of an operator, resident id)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(str_enum(Role, 16))
    subject: Mapped[str | None] = mapped_column(String(64))
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"))
    label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class TerminalNonce(Base):
    """A nonce a terminal has used inside the timestamp window; a repeat is a replay."""

    __tablename__ = "terminal_nonces"

    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
