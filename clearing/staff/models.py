"""Tables of staff accounts: the accounts and their wrong passwords (a console sign-in is a
bearer token of clearing/auth, subject the username).

Created by migration 0006_console; these classes must match it. A password is stored only as
its Argon2id hash. An account is never deleted: disabling
stamps `disabled_at`, so who did what stays attributable.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from clearing.db.base import Base, BigId, UtcDateTime


class StaffAccount(Base):
    """A member of staff. `roles`: the clearing/auth roles, comma-separated (finance,admin)."""

    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(100))
    roles: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class StaffFailedLogin(Base):
    """A wrong password for an account, counted by the lockout (residents' sliding window)."""

    __tablename__ = "staff_failed_logins"
    __table_args__ = (Index("ix_staff_failed_logins_staff", "staff_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
