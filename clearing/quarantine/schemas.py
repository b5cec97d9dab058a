"""Request bodies of the quarantine endpoints. Its responses are the service's own views
(clearing/quarantine/service.py: QuarantinedRecord, RecordDetail), not copies of them."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from clearing.engine.reasons import QuarantineReason
from clearing.http.bodies import JSON_ENUM, RequestModel


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
