"""Check 5, the bank: the escrow account's statement lines (camt.053, imported with `onecard
bank import`) against the payouts that should be on them, by matcher 5
(reconciliation/bank/matching.py). Lines booked as a fund's payment are check 7's.

Payout sources: settlement's payouts, and Stripe's payouts (read from Stripe's API when the
settings name a Stripe key, reconciliation/stripe/): a Stripe payout missing from the statement
or on it for another amount (short by a fee) is a `stripe_payout_unmatched` break.
Reads only; moves nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from reconciliation.bank import repository
from reconciliation.bank.bankdays import calendar_days_covering
from reconciliation.bank.findings import BankFinding
from reconciliation.bank.matching import ExpectedPayout, line_items, match_bank
from reconciliation.bank.settings import BankReconSettings, get_bank_recon_settings
from reconciliation.checks.base import BreakKind, CheckContext, CheckResult, Finding, Scope
from reconciliation.stripe.matching import PAYOUT_KEY_PREFIX, stripe_payouts
from reconciliation.stripe.source import StripeSource, stripe_source_from_settings

# (conn, first expected date, last expected date) -> the payouts expected in that window
PayoutSource = Callable[[AsyncConnection, date, date], Awaitable[list[ExpectedPayout]]]
PAYOUT_SOURCES: tuple[PayoutSource, ...] = (repository.settlement_payouts,)


class BankCheck:
    name = "bank"
    kinds = (
        BreakKind.BANK_CREDIT_MISSING,
        BreakKind.BANK_LINE_UNEXPLAINED,
        BreakKind.BANK_AMOUNT_MISMATCH,
        BreakKind.STRIPE_PAYOUT_UNMATCHED,
    )

    def __init__(
        self, settings: BankReconSettings | None = None, stripe: StripeSource | None = None
    ) -> None:
        self.settings = settings
        self.stripe = stripe

    async def run(self, ctx: CheckContext) -> CheckResult:
        """Payouts expected in the lookback (and up to the tolerance ahead), lines with a value
        date up to the run's day, with a margin before the lookback so that a payout paid early
        at its edge finds its line; breaks only inside the lookback."""
        settings = self.settings or get_bank_recon_settings()
        tolerance = settings.bank_tolerance_days
        margin = timedelta(days=calendar_days_covering(tolerance))
        first = ctx.business_day - timedelta(days=settings.bank_lookback_days)
        payouts: list[ExpectedPayout] = []
        for source in PAYOUT_SOURCES:
            payouts.extend(await source(ctx.conn, first - margin, ctx.business_day + margin))
        stripe = self.stripe or stripe_source_from_settings()
        if stripe is not None:
            # over the whole lookback: an older Stripe credit must still find its payout
            found = await stripe.payouts(first - margin, ctx.business_day + margin)
            payouts.extend(stripe_payouts(found))
        fund_refs = await repository.fund_line_refs(ctx.conn, first - 2 * margin, ctx.business_day)
        lines = [
            item
            for entry in await repository.booked_entries(
                ctx.conn, first - 2 * margin, ctx.business_day
            )
            for item in line_items(entry)
            if item.ref not in fund_refs
        ]
        matched = match_bank(payouts, lines, as_of=ctx.business_day, tolerance_days=tolerance)
        result = CheckResult(matched=matched.matched, total=matched.payouts + matched.lines)
        by_key = {p.key: p for p in payouts}
        by_ref = {ln.ref: ln for ln in lines}
        for finding in matched.findings:
            if _concerns(finding, by_key, by_ref) >= first:
                result.add(as_finding(finding))
        for refused in await repository.refused_entries(ctx.conn, first):
            result.total += 1
            result.add(
                Finding(
                    BreakKind.BANK_LINE_UNEXPLAINED,
                    f"line:{refused.bank_ref}",
                    0,
                    refused.bank_ref,
                    {
                        "statement_id": refused.statement_id,
                        "refusal": refused.refusal,
                        "why": f"entry refused at import ({refused.refusal}): {refused.detail}",
                    },
                    Scope.STANDING,
                )
            )
        return result


def as_finding(finding: BankFinding) -> Finding:
    """A matcher's break as the run stores it: a standing state, seen as of the run's day.
    A Stripe payout's (missing, or for another amount) is the Stripe payout's own kind."""
    stripe_payout = finding.key.startswith("payout:" + PAYOUT_KEY_PREFIX)
    return Finding(
        BreakKind.STRIPE_PAYOUT_UNMATCHED if stripe_payout else BreakKind(finding.kind.value),
        finding.key,
        finding.amount_fen,
        finding.counterpart,
        finding.details,
        Scope.STANDING,
        finding.first_seen_at,
    )


def _concerns(
    finding: BankFinding, by_key: dict[str, ExpectedPayout], by_ref: dict[str, object]
) -> date:
    """The date a finding is about: its payout's expected date or its line's value date."""
    kind, _, name = finding.key.partition(":")
    if kind == "payout":
        return by_key[name].expected_date
    return by_ref[name].value_date  # type: ignore[attr-defined, no-any-return]
