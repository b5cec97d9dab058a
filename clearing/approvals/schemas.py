"""Request and response bodies of the approval endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from clearing.approvals.models import ApprovalKind, ApprovalState
from clearing.http.bodies import JSON_ENUM, RequestModel


class ApprovalAsk(RequestModel):
    kind: Annotated[ApprovalKind, JSON_ENUM]
    target: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="write_off: tap record id; card_refund: card number; topup_refund: top-up "
        "id; early_settlement: the business day YYYY-MM-DD; break_write_off: reconciliation "
        "break id",
    )
    reason: str = Field(min_length=1, max_length=2000, description="Why (audited)")
    paid_by: Literal["cash", "bank"] | None = Field(
        default=None, description="card_refund only: paid out in cash or to a bank account"
    )


class ApprovalDecision(RequestModel):
    note: str = Field(default="", max_length=2000, description="The approver's note (audited)")


class ApprovalRejection(RequestModel):
    note: str = Field(min_length=1, max_length=2000, description="Why it is rejected (audited)")


class ApprovalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: ApprovalKind
    target: str
    paid_by: str | None
    reason: str
    state: ApprovalState
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    outcome: str | None
    files: list[str] = Field(default_factory=list, description="An early settlement's files")
