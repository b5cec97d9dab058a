"""Commission and net of a participant's day. Pure integer fen, never float.

Rounding rule (what finance staff can recompute by hand): commission is computed once per
participant per business day on the day's gross, `gross_fen * commission_bp / 10000`, rounded
half up to the fen (0.5 fen and above rounds up). Never per tap: per-tap rounding of a 2-yuan
fare at 0.5% would round every fen fraction and drift by thousands of fen a day.
"""

from __future__ import annotations

from dataclasses import dataclass

BASIS_POINTS = 10_000
COMMISSION_BP_MAX = BASIS_POINTS
GROSS_FEN_MAX = 2**62  # far above a city's turnover; keeps every product inside int64 math


class FeeError(ValueError):
    code = "fee_input_invalid"


def commission_fen(gross_fen: int, commission_bp: int) -> int:
    """Commission on a day's gross, rounded half up to the fen."""
    if not isinstance(gross_fen, int) or not isinstance(commission_bp, int):
        raise FeeError("gross and commission rate must be integers (fen, basis points)")
    if not 0 <= gross_fen <= GROSS_FEN_MAX:
        raise FeeError(f"gross must be 0 .. {GROSS_FEN_MAX} fen, got {gross_fen}")
    if not 0 <= commission_bp <= COMMISSION_BP_MAX:
        raise FeeError(f"commission must be 0 .. {COMMISSION_BP_MAX} bp, got {commission_bp}")
    return (gross_fen * commission_bp * 2 + BASIS_POINTS) // (2 * BASIS_POINTS)


@dataclass(frozen=True, slots=True)
class DayTotals:
    """One participant's business day: what it is owed and what it is paid."""

    participant_code: str
    taps: int
    fares_fen: int  # card money (card:<no> -> payable)
    subsidy_fen: int  # concession claims (subsidy:<scheme> -> payable)
    insured_fen: int  # insured shares of clinic visits (insurer:<scheme> -> payable)
    commission_bp: int
    commission_fen: int
    net_fen: int

    @property
    def gross_fen(self) -> int:
        return self.fares_fen + self.subsidy_fen + self.insured_fen


def day_totals(
    participant_code: str,
    *,
    taps: int,
    fares_fen: int,
    subsidy_fen: int,
    insured_fen: int,
    commission_bp: int,
) -> DayTotals:
    """Gross = fares + subsidy + insured; commission on gross; net = gross - commission."""
    for name, value in (
        ("taps", taps),
        ("fares", fares_fen),
        ("subsidy", subsidy_fen),
        ("insured", insured_fen),
    ):
        if value < 0:
            raise FeeError(f"{name} must not be negative, got {value}")
    gross = fares_fen + subsidy_fen + insured_fen
    commission = commission_fen(gross, commission_bp)
    return DayTotals(
        participant_code,
        taps,
        fares_fen,
        subsidy_fen,
        insured_fen,
        commission_bp,
        commission,
        gross - commission,
    )
