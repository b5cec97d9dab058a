"""Tables of residents: accounts, refresh tokens (by family), card links and failed tries.

Created by migration 0005_residents; these classes must match it. A password is stored only
as its Argon2id hash, a refresh token only as its SHA-256. A card link is never deleted:
unlinking stamps `unlinked_at`, so who held which card when stays known.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from clearing.db.base import Base, BigId, UtcDateTime, str_enum
from clearing.residents.rules import LoginKind


class AttemptKind(enum.StrEnum):
    LOGIN = "login"  # a wrong password for an account
    LINK = "link"  # a wrong card proof (or a card number that matches no card)


class Resident(Base):
    """A resident's account: `id` is what their access tokens name as subject."""

    __tablename__ = "residents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    login: Mapped[str] = mapped_column(String(254), unique=True)  # normalised (rules.py)
    login_kind: Mapped[LoginKind] = mapped_column(str_enum(LoginKind, 8))
    display_name: Mapped[str | None] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class RefreshToken(Base):
    """One refresh token of a sign-in (`family_id`); used once, then replaced by the next.

    `access_token_id` is the access token issued with it, so revoking a family ends its access
    tokens too. `grace_until`: after a web renewal used it, until when a parallel page load of
    the same browser may still present it (signin.refresh's grace); None: no grace."""

    __tablename__ = "resident_refresh_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id"), index=True)
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    access_token_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("api_tokens.id"), index=True
    )
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    grace_until: Mapped[datetime | None] = mapped_column(UtcDateTime())


class CardLink(Base):
    """A card a resident has proven to hold. One open link per card (a partial unique index)."""

    __tablename__ = "card_links"
    __table_args__ = (
        Index(
            "uq_card_links_open_card_no",
            "card_no",
            unique=True,
            postgresql_where=text("unlinked_at IS NULL"),
            sqlite_where=text("unlinked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id"), index=True)
    card_no: Mapped[str] = mapped_column(ForeignKey("cards.card_no"))
    label: Mapped[str | None] = mapped_column(String(40))  # "grandma's card"
    linked_at: Mapped[datetime] = mapped_column(UtcDateTime())
    unlinked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class FailedAttempt(Base):
    """A wrong password or a wrong card proof, counted by the rate limits (rules.retry_after_s)."""

    __tablename__ = "resident_failed_attempts"
    __table_args__ = (
        Index("ix_resident_failed_attempts_resident", "kind", "resident_id", "at"),
        Index("ix_resident_failed_attempts_card", "kind", "card_no", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[AttemptKind] = mapped_column(str_enum(AttemptKind, 8))
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id"))
    card_no: Mapped[str | None] = mapped_column(String(16))  # may name no card at all
    at: Mapped[datetime] = mapped_column(UtcDateTime())
