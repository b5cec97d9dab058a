"""Response bodies of the settlement endpoints."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class SettlementLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    participant_code: str
    participant_name: str
    bank_name: str
    bank_account: str
    taps: int
    fares_fen: int
    subsidy_fen: int
    insured_fen: int
    gross_fen: int
    commission_bp: int
    commission_fen: int
    net_fen: int


class ClaimOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    account: str
    kind: str
    scheme: str
    items: int
    amount_fen: int


class SettlementOut(BaseModel):
    business_day: date
    created_at: datetime
    message_id: str
    already_settled: bool
    lines: list[SettlementLineOut]
    claims: list[ClaimOut]
    files: list[str] = Field(
        default_factory=list,
        description="Instruction files written by this call (CSV, pain.001, claims), by name; "
        "empty when only read",
    )


class StatementRowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    route_id: str | None
    terminal_id: str
    taps: int
    fares_fen: int
    subsidy_fen: int
    insured_fen: int


class SubsidyRowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    participant_code: str
    route_id: str | None
    business_day: date
    scheme: str
    rides: int
    full_fare_fen: int
    charged_fen: int
    subsidy_fen: int
