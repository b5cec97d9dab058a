"""Tables of the registry: participants, terminals, cards and the card lifecycle's audit trail.

They map onto the ground's `Base` (clearing/db/base.py). The schema itself is owned by the
Alembic migrations (0002_registry); these classes must match it, never create it.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clearing.db.base import Base, BigId, UtcDateTime, str_enum


class ParticipantKind(enum.StrEnum):
    BUS_OPERATOR = "bus_operator"
    CLINIC = "clinic"
    UTILITY = "utility"
    INSURER = "insurer"
    SUBSIDY_FUND = "subsidy_fund"


class ParticipantStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class TerminalKind(enum.StrEnum):
    BUS = "bus"
    CLINIC = "clinic"
    KIOSK = "kiosk"
    UTILITY = "utility"


class TerminalStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    RETIRED = "retired"


class CardType(enum.StrEnum):
    ADULT = "adult"
    STUDENT = "student"
    SENIOR = "senior"
    DISABLED = "disabled"


class CardStatus(enum.StrEnum):
    ACTIVE = "active"
    LOST = "lost"
    BLOCKED = "blocked"
    REPLACED = "replaced"
    REFUNDED = "refunded"


class CardEventKind(enum.StrEnum):
    ISSUED = "issued"
    REPORTED_LOST = "reported_lost"
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    REPLACEMENT_REQUESTED = "replacement_requested"
    BALANCE_MOVED = "balance_moved"
    REFUNDED = "refunded"


class ReplacementState(enum.StrEnum):
    WAITING = "waiting"  # the old card's last taps may still be on their way
    DONE = "done"  # the balance has moved to the new card (as a pending load)


class Participant(Base):
    """A bus operator, clinic, utility, the insurer or a subsidy fund; `code` names its accounts."""

    __tablename__ = "participants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[ParticipantKind] = mapped_column(str_enum(ParticipantKind, 16))
    commission_bp: Mapped[int] = mapped_column(Integer)  # basis points of turnover, 0 … 10000
    bank_account: Mapped[str] = mapped_column(String(40))
    bank_name: Mapped[str] = mapped_column(String(200))
    scheme: Mapped[str | None] = mapped_column(String(32))  # insurer / subsidy fund: its scheme
    status: Mapped[ParticipantStatus] = mapped_column(str_enum(ParticipantStatus, 16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Terminal(Base):
    """A validator, clinic terminal or kiosk; its id is its SAM's 6-byte terminal number."""

    __tablename__ = "terminals"

    terminal_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    kind: Mapped[TerminalKind] = mapped_column(str_enum(TerminalKind, 16))
    line: Mapped[str | None] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(String(64))  # Ed25519 raw public key, hex
    status: Mapped[TerminalStatus] = mapped_column(str_enum(TerminalStatus, 16))
    seq_high: Mapped[int | None] = mapped_column(BigInteger)  # highest terminal_seq received
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Card(Base):
    """One card: number, type, holder and where it is in its life."""

    __tablename__ = "cards"

    card_no: Mapped[str] = mapped_column(String(16), primary_key=True)
    card_type: Mapped[CardType] = mapped_column(str_enum(CardType, 16))
    holder_id: Mapped[str] = mapped_column(String(64), index=True)  # the resident's id
    holder_name: Mapped[str] = mapped_column(String(200))
    scheme: Mapped[str | None] = mapped_column(String(32))  # medical-insurance scheme, if insured
    status: Mapped[CardStatus] = mapped_column(str_enum(CardStatus, 16))
    deposit_fen: Mapped[int] = mapped_column(BigInteger)
    replaced_by: Mapped[str | None] = mapped_column(String(16))
    replaces: Mapped[str | None] = mapped_column(String(16))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status_changed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CardEvent(Base):
    """The audit trail of a card's life: who did what, when and why, with the transfers made."""

    __tablename__ = "card_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    card_no: Mapped[str] = mapped_column(ForeignKey("cards.card_no"), index=True)
    kind: Mapped[CardEventKind] = mapped_column(str_enum(CardEventKind, 32))
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    transfer_ids: Mapped[str | None] = mapped_column(Text)  # comma-separated ledger ids
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class CardReplacement(Base):
    """A replacement whose balance moves once the old card's last taps have cleared."""

    __tablename__ = "card_replacements"

    old_card_no: Mapped[str] = mapped_column(ForeignKey("cards.card_no"), primary_key=True)
    new_card_no: Mapped[str] = mapped_column(ForeignKey("cards.card_no"), unique=True)
    state: Mapped[ReplacementState] = mapped_column(str_enum(ReplacementState, 16))
    deny_list_version: Mapped[int] = mapped_column(BigInteger)  # the version that denies old card
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime())
    moved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    moved_fen: Mapped[int | None] = mapped_column(BigInteger)
    load_id: Mapped[str | None] = mapped_column(String(64))
