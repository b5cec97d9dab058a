"""Matcher 7: what the medical-insurance fund and the concession subsidy fund owe (the claims
settlement records per day on `insurer:<scheme>` and `subsidy:<scheme>`) against what they paid
into the escrow account (their lines on the bank statement). Pure.

Per fund account: a payment whose remittance names a claim's day (YYYY-MM-DD or YYYYMMDD) pays
that claim first; everything else pays the oldest claims first (open-item accounting, as funds
pay in arrears). A claim still unpaid, in full or in part, more than `terms_days` after its day
is a `fund_claim_overdue` break for what is outstanding; money paid beyond every claim is one
`fund_overpaid` break per fund.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from reconciliation.bank.findings import BankBreakKind, BankFinding

TERMS_DAYS_MAX = 366
_DAY_NAMED = re.compile(r"(?<!\d)(20\d{2})-?(\d{2})-?(\d{2})(?!\d)")


@dataclass(frozen=True, slots=True)
class FundClaim:
    account: str  # insurer:<scheme> | subsidy:<scheme>
    business_day: date
    amount_fen: int


@dataclass(frozen=True, slots=True)
class FundPayment:
    account: str
    bank_ref: str
    value_date: date
    amount_fen: int  # received (a returned payment is negative)
    remittance: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimState:
    claim: FundClaim
    paid_fen: int
    due: date  # the last day of its terms

    @property
    def outstanding_fen(self) -> int:
        return self.claim.amount_fen - self.paid_fen


@dataclass(frozen=True, slots=True)
class FundsResult:
    claims: tuple[ClaimState, ...]
    findings: tuple[BankFinding, ...]
    unapplied: dict[str, int]  # fund account -> paid beyond every claim
    matched: int  # claims paid in full and payments applied in full
    total: int  # claims and payments looked at


def claim_day_named(remittance: str | None) -> date | None:
    """The first date written in a remittance text, if it is a date."""
    if not remittance:
        return None
    for year, month, day in _DAY_NAMED.findall(remittance):
        try:
            return date(int(year), int(month), int(day))
        except ValueError:
            continue
    return None


def age_fund_claims(
    claims: Sequence[FundClaim],
    payments: Sequence[FundPayment],
    *,
    as_of: date,
    terms_days: int,
) -> FundsResult:
    """Apply each fund's payments to its claims and age what is left as of `as_of`."""
    if not 0 <= terms_days <= TERMS_DAYS_MAX:
        raise ValueError(f"terms_days must be 0 … {TERMS_DAYS_MAX}")
    claims_of: dict[str, list[FundClaim]] = defaultdict(list)
    for claim in sorted(claims, key=lambda c: (c.account, c.business_day)):
        claims_of[claim.account].append(claim)
    payments_of: dict[str, list[FundPayment]] = defaultdict(list)
    for payment in sorted(payments, key=lambda p: (p.account, p.value_date, p.bank_ref)):
        payments_of[payment.account].append(payment)
    states: list[ClaimState] = []
    findings: list[BankFinding] = []
    unapplied: dict[str, int] = {}
    matched = 0
    for account in sorted(set(claims_of) | set(payments_of)):
        paid, left, applied = _apply(claims_of[account], payments_of[account])
        matched += applied
        for claim in claims_of[account]:
            state = ClaimState(
                claim, paid[claim.business_day], claim.business_day + timedelta(terms_days)
            )
            states.append(state)
            matched += state.outstanding_fen == 0
            if state.outstanding_fen > 0 and as_of > state.due:
                findings.append(_overdue(state, as_of))
        if left > 0:
            unapplied[account] = left
            findings.append(_overpaid(account, left, payments_of[account]))
    return FundsResult(
        tuple(states), tuple(findings), unapplied, matched, len(claims) + len(payments)
    )


def _apply(
    claims: Sequence[FundClaim], payments: Sequence[FundPayment]
) -> tuple[dict[date, int], int, int]:
    """Paid per claim day, the money left over, and how many payments were applied in full."""
    owed = {claim.business_day: claim.amount_fen for claim in claims}
    paid = dict.fromkeys(owed, 0)
    pool = 0
    for payment in payments:
        amount = payment.amount_fen
        named = claim_day_named(payment.remittance)
        if amount > 0 and named in owed:
            taken = min(amount, owed[named] - paid[named])
            paid[named] += taken
            amount -= taken
        pool += amount
    for day in sorted(owed):  # the oldest claims first
        if pool <= 0:
            break
        taken = min(pool, owed[day] - paid[day])
        paid[day] += taken
        pool -= taken
    for day in sorted(owed, reverse=True):  # money returned: the newest claims are owed again
        if pool >= 0:
            break
        given_back = min(-pool, paid[day])
        paid[day] -= given_back
        pool += given_back
    # A payment is applied in full unless the money left over (the newest money) is part of it.
    applied = len(payments)
    left = pool
    for payment in reversed(payments):
        if left <= 0:
            break
        applied -= 1
        left -= payment.amount_fen
    return paid, max(pool, 0), applied


def _overdue(state: ClaimState, as_of: date) -> BankFinding:
    claim = state.claim
    return BankFinding(
        BankBreakKind.FUND_CLAIM_OVERDUE,
        f"claim:{claim.account}:{claim.business_day.isoformat()}",
        state.outstanding_fen,
        claim.account,
        {
            "claim_day": claim.business_day.isoformat(),
            "claimed_fen": claim.amount_fen,
            "paid_fen": state.paid_fen,
            "due": state.due.isoformat(),
            "days_overdue": (as_of - state.due).days,
            "why": f"{claim.account} owes {state.outstanding_fen} fen of its {claim.amount_fen} "
            f"fen claim of {claim.business_day}, due {state.due}",
        },
        datetime.combine(state.due + timedelta(days=1), time(), tzinfo=UTC),
    )


def _overpaid(account: str, left_fen: int, payments: Sequence[FundPayment]) -> BankFinding:
    last = payments[-1]
    return BankFinding(
        BankBreakKind.FUND_OVERPAID,
        f"overpaid:{account}",
        left_fen,
        account,
        {
            "last_payment": last.bank_ref,
            "why": f"{account} paid {left_fen} fen more than all its claims; the excess is owed "
            "back to the fund or is an advance on claims to come",
        },
        datetime.combine(last.value_date, time(), tzinfo=UTC),
    )
