"""The rules-based medical-insurance split: deductible, percentage and annual cap per scheme.

Pure integer fen. For one visit, given what the card's holder already used this benefit year:
1. the part of the bill still under the annual deductible is the patient's;
2. of the rest, `insured_bp` basis points are insured, rounded DOWN to the fen (the fund never
   pays a fraction of a fen more than its rule; the patient pays the odd fen);
3. the insured share is capped so the year's insured total never exceeds `annual_cap_fen`.
Always: insured + patient = bill, both >= 0.
"""

from __future__ import annotations

from dataclasses import dataclass

BILL_FEN_MAX = 10_000_000_00  # a 10-million-yuan bill is not a clinic visit
BASIS_POINTS = 10_000


class RuleError(ValueError):
    code = "insurance_rule_invalid"


@dataclass(frozen=True, slots=True)
class SchemeRule:
    scheme: str
    deductible_fen: int  # per benefit year
    insured_bp: int  # share of the bill above the deductible the fund pays
    annual_cap_fen: int  # the most the fund pays per benefit year

    def __post_init__(self) -> None:
        if self.deductible_fen < 0 or self.annual_cap_fen < 0:
            raise RuleError("deductible and cap must not be negative")
        if not 0 <= self.insured_bp <= BASIS_POINTS:
            raise RuleError("insured share must be 0 .. 10000 basis points")

    def describe(self) -> str:
        return (
            f"{self.scheme}: deductible {self.deductible_fen} fen/yr, "
            f"{self.insured_bp / 100:g}% insured, cap {self.annual_cap_fen} fen/yr"
        )


@dataclass(frozen=True, slots=True)
class YearToDate:
    """What this card's holder already used of the scheme in the benefit year."""

    deductible_fen: int = 0  # paid by the patient toward the deductible
    insured_fen: int = 0  # paid by the fund


@dataclass(frozen=True, slots=True)
class Split:
    scheme: str | None
    bill_fen: int
    deductible_fen: int  # part of the bill that went toward the deductible
    insured_fen: int
    patient_fen: int
    rule: str


def split_bill(rule: SchemeRule, bill_fen: int, ytd: YearToDate) -> Split:
    if not 0 <= bill_fen <= BILL_FEN_MAX:
        raise RuleError(f"bill must be 0 .. {BILL_FEN_MAX} fen")
    if ytd.deductible_fen < 0 or ytd.insured_fen < 0:
        raise RuleError("year-to-date amounts must not be negative")
    deductible_left = max(0, rule.deductible_fen - ytd.deductible_fen)
    deductible = min(bill_fen, deductible_left)
    eligible = bill_fen - deductible
    insured = eligible * rule.insured_bp // BASIS_POINTS
    cap_left = max(0, rule.annual_cap_fen - ytd.insured_fen)
    insured = min(insured, cap_left)
    return Split(
        scheme=rule.scheme,
        bill_fen=bill_fen,
        deductible_fen=deductible,
        insured_fen=insured,
        patient_fen=bill_fen - insured,
        rule=rule.describe()[:200],
    )


def uninsured(bill_fen: int) -> Split:
    if not 0 <= bill_fen <= BILL_FEN_MAX:
        raise RuleError(f"bill must be 0 .. {BILL_FEN_MAX} fen")
    return Split(None, bill_fen, 0, 0, bill_fen, "uninsured: the patient pays the bill")


# The schemes the embedded default ships with (illustrative figures, configurable per city).
DEFAULT_RULES: dict[str, SchemeRule] = {
    rule.scheme: rule
    for rule in (
        SchemeRule("employee", deductible_fen=50_00, insured_bp=7000, annual_cap_fen=20_000_00),
        SchemeRule("resident", deductible_fen=100_00, insured_bp=5000, annual_cap_fen=10_000_00),
        SchemeRule("urban", deductible_fen=0, insured_bp=8000, annual_cap_fen=5_000_00),
    )
}
