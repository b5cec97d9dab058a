"""Clinic visit splits (migration 0003_clearing): what the insurance adapter decided for each
visit, so the clinic's tap record can be checked against it at clearing and the annual
deductible and cap can be counted per card, scheme and benefit year."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from clearing.db.base import Base, UtcDateTime


class ClinicSplit(Base):
    __tablename__ = "clinic_splits"

    participant_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    visit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    terminal_id: Mapped[str] = mapped_column(String(12))
    card_no: Mapped[str] = mapped_column(String(16))
    scheme: Mapped[str | None] = mapped_column(String(32))
    bill_fen: Mapped[int] = mapped_column(BigInteger)
    deductible_fen: Mapped[int] = mapped_column(BigInteger)
    insured_fen: Mapped[int] = mapped_column(BigInteger)
    patient_fen: Mapped[int] = mapped_column(BigInteger)
    rule: Mapped[str] = mapped_column(String(200))
    adapter: Mapped[str] = mapped_column(String(32))
    visit_at: Mapped[datetime] = mapped_column(UtcDateTime())
    benefit_year: Mapped[int] = mapped_column(Integer)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime())
