"""Settlement tables (migration 0003_clearing): one run per business day (its primary key is
what makes settling a day twice change nothing), a line per participant, a claim per fund."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from clearing.db.base import Base, UtcDateTime


class SettlementRun(Base):
    __tablename__ = "settlement_runs"

    business_day: Mapped[date] = mapped_column(Date, primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # posted
    cutoff_at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    message_id: Mapped[str] = mapped_column(String(35), unique=True)
    participants: Mapped[int] = mapped_column(Integer)
    taps: Mapped[int] = mapped_column(BigInteger)
    gross_fen: Mapped[int] = mapped_column(BigInteger)
    commission_fen: Mapped[int] = mapped_column(BigInteger)
    net_fen: Mapped[int] = mapped_column(BigInteger)


class SettlementLine(Base):
    __tablename__ = "settlement_lines"

    business_day: Mapped[date] = mapped_column(
        ForeignKey("settlement_runs.business_day"), primary_key=True
    )
    participant_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    participant_name: Mapped[str] = mapped_column(String(200))
    bank_account: Mapped[str] = mapped_column(String(40))
    bank_name: Mapped[str] = mapped_column(String(200))
    taps: Mapped[int] = mapped_column(BigInteger)
    fares_fen: Mapped[int] = mapped_column(BigInteger)
    subsidy_fen: Mapped[int] = mapped_column(BigInteger)
    insured_fen: Mapped[int] = mapped_column(BigInteger)
    gross_fen: Mapped[int] = mapped_column(BigInteger)
    commission_bp: Mapped[int] = mapped_column(Integer)
    commission_fen: Mapped[int] = mapped_column(BigInteger)
    net_fen: Mapped[int] = mapped_column(BigInteger)
    commission_transfer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    payout_transfer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class SettlementClaim(Base):
    __tablename__ = "settlement_claims"

    business_day: Mapped[date] = mapped_column(
        ForeignKey("settlement_runs.business_day"), primary_key=True
    )
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # insurer | subsidy
    scheme: Mapped[str] = mapped_column(String(32))
    items: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
