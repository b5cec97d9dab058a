"""What the bank and fund matchers report: breaks as data (STYLE.md: a reconciliation finding is
never an exception), with a key that stays the same from one run to the next, and bank days.

Pure: no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, timedelta

SATURDAY = 5  # date.weekday(): Monday 0 … Sunday 6


class BreakKind(enum.StrEnum):
    """The breaks of matchers 5 (bank) and 7 (funds)."""

    BANK_CREDIT_MISSING = (
        "bank_credit_missing"  # a payout the statement never shows, past tolerance
    )
    BANK_LINE_UNEXPLAINED = "bank_line_unexplained"  # a statement line no payout explains
    BANK_AMOUNT_MISMATCH = "bank_amount_mismatch"  # the line names the payout, the amount differs
    FUND_CLAIM_OVERDUE = "fund_claim_overdue"  # a fund's claim unpaid (in part) past its terms
    FUND_OVERPAID = "fund_overpaid"  # a fund paid more than all it owes


@dataclass(frozen=True, slots=True)
class Finding:
    """One break: `key` identifies it across runs (a re-run finds the same key again)."""

    kind: BreakKind
    key: str
    amount_fen: int  # what is missing, unexplained or over (never negative)
    counterpart: str  # participant code, fund account or bank reference
    day: date  # the day it concerns: a payout's expected date, a line's value date, a claim's day
    detail: str


def bank_days_between(first: date, second: date) -> int:
    """Bank business days (Monday to Friday) after the earlier date up to the later one:
    Friday -> Monday is 1, Saturday -> Monday is 1, Friday -> Sunday is 0."""
    start, end = sorted((first, second))
    days = (end - start).days
    weeks, rest = divmod(days, 7)
    count = weeks * 5
    for offset in range(1, rest + 1):
        if (start + timedelta(days=weeks * 7 + offset)).weekday() < SATURDAY:
            count += 1
    return count


def add_bank_days(day: date, count: int) -> date:
    """`count` bank days after `day` (before it when negative), landing on a weekday; a count
    of 0 gives `day` itself."""
    step = 1 if count > 0 else -1
    moved = day
    for _ in range(abs(count)):
        moved += timedelta(days=step)
        while moved.weekday() >= SATURDAY:
            moved += timedelta(days=step)
    return moved
