"""Check 6, billers: each biller's daily confirmation files against the bills onecard paid it,
by matcher 6 (reconciliation/billers/matching.py). Reads only; moves nothing.

Window: the run's day and `stripe_lookback_days` before it (the same lookback as Stripe's). The
files read are those of the billers onecard paid (or began to pay) in the window, for every
calendar day of the window and the day after the run's day (a confirmation sent after midnight
lands in the next day's file), up to the run's own date. A payment still unconfirmed
`biller_grace_days` after its day is a break; a re-run once the file lists it closes it.
"""

from __future__ import annotations

from datetime import timedelta

from reconciliation.bank.settings import BankReconSettings, get_bank_recon_settings
from reconciliation.billers import repository
from reconciliation.billers.matching import BillerFinding, ConfirmationLine, match_billers
from reconciliation.billers.source import ConfirmationSource, confirmation_source_from_settings
from reconciliation.checks.base import BreakKind, CheckContext, CheckResult, Finding, Scope


class BillerCheck:
    name = "billers"
    kinds = (BreakKind.BILLER_UNCONFIRMED, BreakKind.BILLER_CONFIRMATION_UNEXPLAINED)

    def __init__(
        self, source: ConfirmationSource | None = None, settings: BankReconSettings | None = None
    ) -> None:
        self.source = source
        self.settings = settings

    async def run(self, ctx: CheckContext) -> CheckResult:
        settings = self.settings or get_bank_recon_settings()
        first = ctx.business_day - timedelta(days=settings.stripe_lookback_days)
        start, end = ctx.calendar.day_start(first), ctx.day_end
        billers = await repository.billers_paid(ctx.conn, start, end)
        source = self.source or confirmation_source_from_settings()
        if not billers or source is None:
            return CheckResult()
        paid = await repository.paid_bills(ctx.conn, start, end, ctx.calendar)
        last = min(ctx.business_day + timedelta(days=1), ctx.now.date())
        lines: list[ConfirmationLine] = []
        for biller in billers:
            for day in repository.days(first, last):
                lines.extend(await source.lines(biller, day))
        matched = match_billers(
            paid, lines, as_of=ctx.business_day, grace_days=settings.biller_grace_days
        )
        result = CheckResult(matched=matched.matched, total=matched.total)
        for finding in matched.findings:
            result.add(as_finding(finding))
        return result


def as_finding(finding: BillerFinding) -> Finding:
    return Finding(
        BreakKind(finding.kind.value),
        finding.key,
        finding.amount_fen,
        finding.counterpart[:100],
        finding.details,
        Scope.STANDING,
    )
