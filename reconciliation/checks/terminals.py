"""Check: terminals (being written)."""

from __future__ import annotations

from reconciliation.checks.base import BreakKind, CheckContext, CheckResult


class TerminalCheck:
    name = "terminals"
    kinds = (
        BreakKind.TERMINAL_GAP,
        BreakKind.BATCH_DUPLICATED,
        BreakKind.TERMINAL_TOTALS,
        BreakKind.TAP_FORGED,
    )

    async def run(self, ctx: CheckContext) -> CheckResult:
        return CheckResult()
