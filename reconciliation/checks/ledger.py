"""Check 1, the ledger: every ledger's debits equal its credits, every account's balance equals
the sum of its transfers, and the float holds.

The float (DESIGN.md's chart): residents' money is what the card company owes card holders,
  card:* + card-pending:* + card-deposit:*   (on the cards, paid online not yet loaded, deposits)
and it must equal what the escrow side holds for them,
  bank:escrow + bank:cash + stripe:balance + insurer:* + subsidy:*
  - payable:* - suspense:* - revenue:commission + expense:psp-fees
i.e. the money held (in the escrow account, at the counters, at Stripe, and claims on the funds
that will pay into escrow) less what of it belongs to others (operators not yet paid, money not
yet placed, the company's own commission; Stripe's fees were taken out of it). Balanced books
with every account in the chart make both sides equal; an account outside the chart or a ledger
that does not balance shows as a difference. Reads through ledger.reader only; moves nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from clearing.books.chart import AccountType
from clearing.books.codes import LEDGER_CNY
from ledger.reader import CodeTotals, balance_mismatches, totals_by_code
from reconciliation.checks.base import BreakKind, CheckContext, CheckResult, Finding, Scope

RESIDENTS = (AccountType.CARD, AccountType.CARD_PENDING, AccountType.CARD_DEPOSIT)
HELD = (
    AccountType.BANK_ESCROW,
    AccountType.BANK_CASH,
    AccountType.STRIPE_BALANCE,
    AccountType.INSURER,
    AccountType.SUBSIDY,
)
OWED_TO_OTHERS = (AccountType.PAYABLE, AccountType.SUSPENSE, AccountType.REVENUE_COMMISSION)
TAKEN_OUT = (AccountType.EXPENSE_PSP_FEES,)
_DEBIT_NORMAL = {*HELD, *TAKEN_OUT}


def normal_balances(totals: Iterable[CodeTotals], ledger: int) -> dict[int, int]:
    """Posted balance per account code on its normal side (assets, expenses: debit)."""
    out: dict[int, int] = {}
    for t in totals:
        if t.ledger != ledger:
            continue
        debit = t.debits_posted - t.credits_posted
        out[t.code] = debit if t.code in _DEBIT_NORMAL else -debit
    return out


def float_sides(balances: Mapping[int, int]) -> tuple[int, int]:
    """(residents' money, what the escrow side holds for it), in fen."""
    residents = sum(balances.get(int(c), 0) for c in RESIDENTS)
    held = (
        sum(balances.get(int(c), 0) for c in HELD)
        - sum(balances.get(int(c), 0) for c in OWED_TO_OTHERS)
        + sum(balances.get(int(c), 0) for c in TAKEN_OUT)
    )
    return residents, held


class LedgerCheck:
    name = "ledger"
    kinds = (BreakKind.LEDGER_UNBALANCED, BreakKind.BALANCE_MISMATCH, BreakKind.FLOAT_MISMATCH)

    async def run(self, ctx: CheckContext) -> CheckResult:
        result = CheckResult()
        totals = await totals_by_code(ctx.conn)
        by_ledger: dict[int, list[int]] = {}
        for t in totals:
            sums = by_ledger.setdefault(t.ledger, [0, 0, 0, 0])
            for i, v in enumerate(
                (t.debits_posted, t.credits_posted, t.debits_pending, t.credits_pending)
            ):
                sums[i] += v
            result.total += t.accounts
        for ledger, (dpo, cpo, dp, cp) in sorted(by_ledger.items()):
            result.total += 1
            if dpo == cpo and dp == cp:
                result.matched += 1
                continue
            result.add(
                Finding(
                    BreakKind.LEDGER_UNBALANCED,
                    f"ledger:{ledger}",
                    abs(dpo - cpo) or abs(dp - cp),
                    f"ledger {ledger}",
                    {
                        "debits_posted": dpo,
                        "credits_posted": cpo,
                        "debits_pending": dp,
                        "credits_pending": cp,
                    },
                    Scope.STANDING,
                )
            )
        mismatched = 0
        async for m in balance_mismatches(ctx.conn):
            mismatched += 1
            diff = max(abs(a - b) for a, b in zip(m.stored, m.summed, strict=True))
            result.add(
                Finding(
                    BreakKind.BALANCE_MISMATCH,
                    m.name[:200],
                    diff,
                    m.name[:100],
                    {
                        "stored": list(m.stored),
                        "summed": list(m.summed),
                        "order": "debits_pending, debits_posted, credits_pending, credits_posted",
                    },
                    Scope.STANDING,
                )
            )
        result.matched += sum(t.accounts for t in totals) - mismatched
        self._check_float(result, totals)
        return result

    def _check_float(self, result: CheckResult, totals: list[CodeTotals]) -> None:
        if not totals:
            return
        residents, held = float_sides(normal_balances(totals, LEDGER_CNY))
        result.total += 1
        if residents == held:
            result.matched += 1
            return
        result.add(
            Finding(
                BreakKind.FLOAT_MISMATCH,
                f"float:{LEDGER_CNY}",
                abs(residents - held),
                "bank:escrow",
                {"residents_fen": residents, "held_fen": held},
                Scope.STANDING,
            )
        )
