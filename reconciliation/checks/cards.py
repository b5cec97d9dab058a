"""Check: cards (being written)."""

from __future__ import annotations

from reconciliation.checks.base import BreakKind, CheckContext, CheckResult


class CardCheck:
    name = "cards"
    kinds = (BreakKind.CARD_COUNTER_GAP, BreakKind.CARD_REPLAY, BreakKind.CARD_CLONE_SUSPECTED)

    async def run(self, ctx: CheckContext) -> CheckResult:
        return CheckResult()
