"""Check: ledger (being written)."""

from __future__ import annotations

from reconciliation.checks.base import BreakKind, CheckContext, CheckResult


class LedgerCheck:
    name = "ledger"
    kinds = (BreakKind.LEDGER_UNBALANCED, BreakKind.BALANCE_MISMATCH, BreakKind.FLOAT_MISMATCH)

    async def run(self, ctx: CheckContext) -> CheckResult:
        return CheckResult()
