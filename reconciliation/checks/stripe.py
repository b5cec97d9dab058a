"""Check 4, Stripe: its charges (balance transactions read through the SDK, paginated) against
the top-ups and phone bill payments clearing posted, fees included, by matcher 4
(reconciliation/stripe/matching.py). Stripe's payouts against the bank statement are matcher 5's
(reconciliation/checks/bank.py asks Stripe for them). Reads only; moves nothing.

The window is the run's day and `stripe_lookback_days` before it, with a margin either side so
that a charge and its posting either side of the window's edge still meet. Without a Stripe key
in the settings there is nothing to compare and the check looks at nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from reconciliation.bank.settings import BankReconSettings, get_bank_recon_settings
from reconciliation.checks.base import BreakKind, CheckContext, CheckResult, Finding, Scope
from reconciliation.stripe import repository
from reconciliation.stripe.matching import StripeFinding, match_charges
from reconciliation.stripe.source import StripeSource, stripe_source_from_settings

EDGE_MARGIN = timedelta(hours=1)  # a PaymentIntent is asked for and charged within this


class StripeCheck:
    name = "stripe"
    kinds = (
        BreakKind.STRIPE_PAYMENT_UNPOSTED,
        BreakKind.STRIPE_PAYMENT_UNKNOWN,
        BreakKind.STRIPE_AMOUNT_MISMATCH,
        BreakKind.STRIPE_FEE_MISMATCH,
    )

    def __init__(
        self, source: StripeSource | None = None, settings: BankReconSettings | None = None
    ) -> None:
        self.source = source
        self.settings = settings

    async def run(self, ctx: CheckContext) -> CheckResult:
        source = self.source or stripe_source_from_settings()
        if source is None:
            return CheckResult()
        settings = self.settings or get_bank_recon_settings()
        start = ctx.calendar.day_start(
            ctx.business_day - timedelta(days=settings.stripe_lookback_days)
        )
        end = ctx.day_end
        charges = await source.charges(start - EDGE_MARGIN, end + EDGE_MARGIN)
        posted = await repository.posted_payments(ctx.conn, start - EDGE_MARGIN, end + EDGE_MARGIN)
        inside = {c.charge_id for c in charges if start <= c.created < end}
        inside |= {p.payment_intent for p in posted if p.at is not None and start <= p.at < end}
        matched = match_charges(charges, posted)
        result = CheckResult(matched=matched.matched, total=matched.total)
        for finding in matched.findings:
            if _subject(finding) in inside:
                result.add(as_finding(finding))
        return result


def _subject(finding: StripeFinding) -> str:
    """The charge (or, for a payment Stripe does not know, the intent) a finding is about."""
    return str(finding.details.get("charge") or finding.key.partition(":")[2])


def as_finding(finding: StripeFinding, first_seen_at: datetime | None = None) -> Finding:
    return Finding(
        BreakKind(finding.kind.value),
        finding.key,
        finding.amount_fen,
        finding.counterpart,
        finding.details,
        Scope.STANDING,
        first_seen_at,
    )
