"""Bodies of the clinic split endpoint (docs/terminal-protocol.md, "Clinic visit split")."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from clearing.clinic.rules import BILL_FEN_MAX
from clearing.http.bodies import Instant, JsonInt, RequestModel

VisitId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
CardNo = Annotated[str, StringConstraints(pattern=r"^[0-9]{16}$")]


class SplitIn(RequestModel):
    visit_id: VisitId
    card_no: CardNo
    bill_fen: JsonInt = Field(ge=0, le=BILL_FEN_MAX)
    visit_at: Instant


class SplitOut(BaseModel):
    visit_id: str
    card_no: str
    scheme: str | None
    bill_fen: int
    insured_fen: int
    patient_fen: int
    rule: str
