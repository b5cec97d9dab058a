"""The breaks the bank and fund matchers find, as plain data (STYLE.md: a finding is never an
exception). Pure, and free of the run framework so that the matchers stay importable on their
own: reconciliation/checks/bank.py and funds.py turn each into the framework's Finding (the
kinds' values are the framework's BreakKind values, a test holds them equal).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class BankBreakKind(enum.StrEnum):
    BANK_CREDIT_MISSING = "bank_credit_missing"  # a payout not on the statement past tolerance
    BANK_LINE_UNEXPLAINED = "bank_line_unexplained"  # a statement line no payout explains
    BANK_AMOUNT_MISMATCH = "bank_amount_mismatch"  # a line names a payout, its amount differs
    FUND_CLAIM_OVERDUE = "fund_claim_overdue"  # a fund's claim unpaid (in part) past its terms
    FUND_OVERPAID = "fund_overpaid"  # a fund paid more than all it owes


@dataclass(frozen=True, slots=True)
class BankFinding:
    """One break: `key` names the same fault on every run; it is a standing state (seen as of
    the run's day, gone when the data that resolves it arrives)."""

    kind: BankBreakKind
    key: str
    amount_fen: int
    counterpart: str
    details: dict[str, Any] = field(default_factory=dict)
    first_seen_at: datetime | None = None
