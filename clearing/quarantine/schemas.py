"""Request and response bodies of the quarantine endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from clearing.engine.reasons import QuarantineReason
from clearing.http.bodies import JSON_ENUM, RequestModel


class QuarantinedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    terminal_id: str
    kind: str
    card_no: str
    card_counter: int
    terminal_seq: int
    amount_fen: int
    occurred_at: datetime
    reason: str | None
    state: str


class ActionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    action: str
    reason: str | None
    override: str | None
    actor: str
    note: str
    at: datetime


class RecordDetailOut(BaseModel):
    record: dict[str, Any]
    actions: list[ActionOut]
    disposition: str | None


class ReleaseIn(RequestModel):
    note: str = Field(min_length=1, max_length=2000, description="Why: what was fixed")
    override: Annotated[QuarantineReason, JSON_ENUM] | None = Field(
        default=None,
        description="Accept this soft reason (balance_chain_broken, grey_unresolved) on re-clear",
    )


class WriteOffIn(RequestModel):
    note: str = Field(min_length=1, max_length=2000, description="Why it will never clear")


class ReasonCountOut(BaseModel):
    reason: str
    records: int
