"""Check 7, the funds: what the medical-insurance and subsidy funds owe (settlement's claims per
day on insurer:<scheme> and subsidy:<scheme>) against their payments on the bank statement
(the lines clearing booked as theirs at import), by matcher 7 (reconciliation/bank/funds.py).

A fund's whole history is read (one claim per scheme and day: small), so its payments are
applied to its claims from the first. Reads only; moves nothing.
"""

from __future__ import annotations

from reconciliation.bank import repository
from reconciliation.bank.funds import age_fund_claims
from reconciliation.bank.settings import BankReconSettings, get_bank_recon_settings
from reconciliation.checks.bank import as_finding
from reconciliation.checks.base import BreakKind, CheckContext, CheckResult


class FundsCheck:
    name = "funds"
    kinds = (BreakKind.FUND_CLAIM_OVERDUE, BreakKind.FUND_OVERPAID)

    def __init__(self, settings: BankReconSettings | None = None) -> None:
        self.settings = settings

    async def run(self, ctx: CheckContext) -> CheckResult:
        settings = self.settings or get_bank_recon_settings()
        claims = await repository.fund_claims(ctx.conn, ctx.business_day)
        payments = await repository.fund_payments(ctx.conn, ctx.business_day)
        aged = age_fund_claims(
            claims, payments, as_of=ctx.business_day, terms_days=settings.fund_terms_days
        )
        result = CheckResult(matched=aged.matched, total=aged.total)
        for finding in aged.findings:
            result.add(as_finding(finding))
        return result
