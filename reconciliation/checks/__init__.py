"""The checks a reconciliation run executes, in order (reconciliation/checks/base.py says how
to write one). Each reports its own match counts and findings; none writes or moves money."""

from __future__ import annotations

from reconciliation.checks.bank import BankCheck
from reconciliation.checks.base import Check
from reconciliation.checks.billers import BillerCheck
from reconciliation.checks.cards import CardCheck
from reconciliation.checks.escrow import EscrowBalanceCheck
from reconciliation.checks.funds import FundsCheck
from reconciliation.checks.ledger import LedgerCheck
from reconciliation.checks.stripe import StripeCheck
from reconciliation.checks.terminals import TerminalCheck

# 1. ledger, 2. terminals, 3. cards, then the matchers: Stripe (4), bank (5, with Stripe's
# payouts), billers (6), funds (7), the escrow balance against the bank's (8).
CHECKS: tuple[Check, ...] = (
    LedgerCheck(),
    TerminalCheck(),
    CardCheck(),
    StripeCheck(),  # 4. Stripe's charges against top-ups and phone bill payments, fees
    BankCheck(),  # 5. the bank statement against payouts (settlement's and Stripe's)
    BillerCheck(),  # 6. the billers' confirmation files against bill payments
    FundsCheck(),  # 7. the funds' claims against their payments
    EscrowBalanceCheck(),  # 8. bank:escrow against the statement's closing balance, per day
)
