"""The checks a reconciliation run executes, in order (reconciliation/checks/base.py says how
to write one). Each reports its own match counts and findings; none writes or moves money."""

from __future__ import annotations

from reconciliation.checks.bank import BankCheck
from reconciliation.checks.base import Check
from reconciliation.checks.cards import CardCheck
from reconciliation.checks.funds import FundsCheck
from reconciliation.checks.ledger import LedgerCheck
from reconciliation.checks.terminals import TerminalCheck

# 1. ledger, 2. terminals, 3. cards; the bank statement (5) and funds (7) matchers go after.
CHECKS: tuple[Check, ...] = (
    LedgerCheck(),
    TerminalCheck(),
    CardCheck(),
    BankCheck(),  # 5. the bank statement against payouts
    FundsCheck(),  # 7. the funds' claims against their payments
)
