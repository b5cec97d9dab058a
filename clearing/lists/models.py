"""Tables of the deny list and the action list (pending loads), their versions and fetches.

A list is an append-only log of changes, each stamped with the version that made it; a
terminal at version N receives the net effect of every change after N. Nothing here is ever
updated in place except the head counter and a pending load's state.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from clearing.db.base import Base, BigId, UtcDateTime, str_enum


class ListKind(enum.StrEnum):
    DENY = "deny"
    ACTION = "action"


class ListOp(enum.StrEnum):
    ADD = "add"
    REMOVE = "remove"


class PendingLoadState(enum.StrEnum):
    PENDING = "pending"  # on the action list, waiting for a tap on a load-capable terminal
    DELIVERED = "delivered"  # written onto the card (confirmed by a cleared load record)
    EXPIRED = "expired"  # not delivered before expires_at: refunded by its owner
    CANCELLED = "cancelled"


class ListHead(Base):
    """The current version of one list (a counter bumped atomically by each change)."""

    __tablename__ = "list_heads"

    list_kind: Mapped[ListKind] = mapped_column(str_enum(ListKind, 16), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class ListVersion(Base):
    """When each version of a list was made, and why."""

    __tablename__ = "list_versions"

    list_kind: Mapped[ListKind] = mapped_column(str_enum(ListKind, 16), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str] = mapped_column(String(200))


class ListChange(Base):
    """One entry added to or removed from a list at `version` (card_no or load_id as key)."""

    __tablename__ = "list_changes"
    __table_args__ = (Index("ix_list_changes_list_kind_version", "list_kind", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    list_kind: Mapped[ListKind] = mapped_column(str_enum(ListKind, 16))
    version: Mapped[int] = mapped_column(BigInteger)
    entry_key: Mapped[str] = mapped_column(String(64))
    op: Mapped[ListOp] = mapped_column(str_enum(ListOp, 8))


class PendingLoad(Base):
    """Money paid for a card but not yet written onto it: an entry of the action list."""

    __tablename__ = "pending_loads"

    load_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    card_no: Mapped[str] = mapped_column(ForeignKey("cards.card_no"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[PendingLoadState] = mapped_column(str_enum(PendingLoadState, 16))
    source: Mapped[str] = mapped_column(String(32))  # replacement, stripe, counter, ...
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    state_changed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ListFetch(Base):
    """Each time a terminal fetched a list: from which version to which, and when."""

    __tablename__ = "list_fetches"
    __table_args__ = (
        Index("ix_list_fetches_terminal_id_list_kind", "terminal_id", "list_kind", "version"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"))
    list_kind: Mapped[ListKind] = mapped_column(str_enum(ListKind, 16))
    since_version: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(BigInteger)
    fetched_at: Mapped[datetime] = mapped_column(UtcDateTime())
