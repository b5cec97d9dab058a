"""The medical-insurance adapter: who decides a visit's insured share.

In production the medical-insurance platform decides (the card is the credential); an adapter
for it implements `InsuranceAdapter`. `RulesAdapter` is the shipped rules-based one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from clearing.clinic.rules import (
    DEFAULT_RULES,
    SchemeRule,
    Split,
    YearToDate,
    split_bill,
    uninsured,
)


@dataclass(frozen=True, slots=True)
class Visit:
    visit_id: str
    card_no: str
    scheme: str | None  # the card holder's scheme from the registry
    bill_fen: int
    visit_at: datetime


class InsuranceAdapter(Protocol):
    name: str

    async def split(self, visit: Visit, ytd: YearToDate) -> Split: ...


class RulesAdapter:
    """Deductible, percentage and annual cap per scheme; unknown or no scheme: uninsured."""

    name = "rules"

    def __init__(self, rules: dict[str, SchemeRule] | None = None) -> None:
        self.rules = dict(DEFAULT_RULES if rules is None else rules)

    async def split(self, visit: Visit, ytd: YearToDate) -> Split:
        rule = self.rules.get(visit.scheme) if visit.scheme else None
        if rule is None:
            return uninsured(visit.bill_fen)
        return split_bill(rule, visit.bill_fen, ytd)
