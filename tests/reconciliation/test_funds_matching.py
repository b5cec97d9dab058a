"""Matcher 7 (what the funds owe against what they paid), pure: partial payments, payments
naming their claim, over-payments, claims aging past their terms; Hypothesis: funds that pay
everything leave no break, and what is left unpaid is exactly what the overdue breaks say."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from reconciliation.bank.findings import BankBreakKind as BreakKind
from reconciliation.bank.funds import FundClaim, FundPayment, age_fund_claims, claim_day_named

DAY = date(2026, 10, 1)
INSURER, SUBSIDY = "insurer:city-med", "subsidy:senior"
TERMS = 30


def claim(day: int, fen: int, account: str = INSURER) -> FundClaim:
    return FundClaim(account, DAY + timedelta(days=day), fen)


def paid(
    day: int, fen: int, ref: str, account: str = INSURER, note: str | None = None
) -> FundPayment:
    return FundPayment(account, ref, DAY + timedelta(days=day), fen, note)


def test_a_claim_paid_in_full_is_matched() -> None:
    result = age_fund_claims(
        [claim(0, 900)], [paid(20, 900, "R1")], as_of=DAY + timedelta(90), terms_days=TERMS
    )
    assert result.findings == ()
    assert (result.matched, result.total) == (2, 2)


def test_an_unpaid_claim_ages_into_a_break_only_past_its_terms() -> None:
    claims = [claim(0, 900)]
    on_time = age_fund_claims(claims, [], as_of=DAY + timedelta(TERMS), terms_days=TERMS)
    assert on_time.findings == ()
    late = age_fund_claims(claims, [], as_of=DAY + timedelta(TERMS + 1), terms_days=TERMS)
    [finding] = late.findings
    assert (finding.kind, finding.amount_fen, finding.counterpart) == (
        BreakKind.FUND_CLAIM_OVERDUE,
        900,
        INSURER,
    )
    assert finding.key == f"claim:{INSURER}:{DAY}"
    assert finding.details["days_overdue"] == 1


def test_a_partial_payment_leaves_the_rest_overdue() -> None:
    result = age_fund_claims(
        [claim(0, 900)], [paid(10, 600, "R1")], as_of=DAY + timedelta(60), terms_days=TERMS
    )
    [finding] = result.findings
    assert (finding.kind, finding.amount_fen) == (BreakKind.FUND_CLAIM_OVERDUE, 300)
    assert result.claims[0].paid_fen == 600


def test_payments_go_to_the_oldest_claim_unless_they_name_one() -> None:
    claims = [claim(0, 500), claim(1, 700)]
    fifo = age_fund_claims(
        claims, [paid(5, 700, "R1")], as_of=DAY + timedelta(60), terms_days=TERMS
    )
    assert [f.amount_fen for f in fifo.findings] == [500]  # 500 + 200 paid, 500 of day 1 left
    assert fifo.findings[0].key.endswith(str(DAY + timedelta(1)))
    named = age_fund_claims(
        claims,
        [paid(5, 700, "R1", note=f"claims {(DAY + timedelta(1)):%Y%m%d}")],
        as_of=DAY + timedelta(60),
        terms_days=TERMS,
    )
    [finding] = named.findings
    assert (finding.key, finding.amount_fen) == (f"claim:{INSURER}:{DAY}", 500)


def test_an_over_payment_is_one_break_per_fund() -> None:
    result = age_fund_claims(
        [claim(0, 500), claim(0, 100, SUBSIDY)],
        [paid(3, 400, "R1"), paid(4, 300, "R2"), paid(4, 100, "R3", SUBSIDY)],
        as_of=DAY + timedelta(60),
        terms_days=TERMS,
    )
    [finding] = result.findings
    assert (finding.kind, finding.amount_fen, finding.key) == (
        BreakKind.FUND_OVERPAID,
        200,
        f"overpaid:{INSURER}",
    )
    assert result.unapplied == {INSURER: 200}
    assert (result.matched, result.total) == (4, 5)  # R2 is only partly applied


def test_a_returned_payment_makes_the_newest_claim_owed_again() -> None:
    result = age_fund_claims(
        [claim(0, 500), claim(1, 500)],
        [paid(3, 1000, "R1"), paid(5, -400, "R2")],
        as_of=DAY + timedelta(60),
        terms_days=TERMS,
    )
    [finding] = result.findings
    assert (finding.amount_fen, finding.key) == (400, f"claim:{INSURER}:{DAY + timedelta(1)}")


def test_a_day_named_in_a_remittance() -> None:
    assert claim_day_named("claims 2026-12-05 insured share") == date(2026, 12, 5)
    assert claim_day_named("OC20261205") == date(2026, 12, 5)
    assert claim_day_named("invoice 20261399 and 2026-12-01") == date(2026, 12, 1)
    assert claim_day_named("no date") is None


@st.composite
def fund_history(draw: st.DrawFn) -> tuple[list[FundClaim], list[FundPayment]]:
    claims: list[FundClaim] = []
    payments: list[FundPayment] = []
    for account in draw(
        st.lists(st.sampled_from([INSURER, SUBSIDY, "insurer:rural"]), min_size=1, unique=True)
    ):
        days = draw(st.lists(st.integers(0, 60), min_size=1, max_size=6, unique=True))
        for day in days:
            fen = draw(st.integers(1, 10**7))
            claims.append(claim(day, fen, account))
            parts = draw(st.integers(1, 3))
            cuts = sorted(
                draw(
                    st.lists(
                        st.integers(1, max(fen - 1, 1)), min_size=parts - 1, max_size=parts - 1
                    )
                )
            )
            amounts = [b - a for a, b in zip([0, *cuts], [*cuts, fen], strict=True) if b > a]
            for n, amount in enumerate(amounts):
                when = day + draw(st.integers(0, TERMS))
                note = f"claim {DAY + timedelta(day)}" if draw(st.booleans()) else None
                payments.append(paid(when, amount, f"{account}-{day}-{n}", account, note))
    return claims, draw(st.permutations(payments))


@given(fund_history())
def test_funds_paying_everything_leave_no_break(
    history: tuple[list[FundClaim], list[FundPayment]],
) -> None:
    claims, payments = history
    result = age_fund_claims(claims, payments, as_of=DAY + timedelta(400), terms_days=TERMS)
    assert result.findings == ()
    assert result.matched == result.total


@given(fund_history(), st.data())
def test_what_is_left_unpaid_is_what_the_overdue_breaks_say(
    history: tuple[list[FundClaim], list[FundPayment]], data: st.DataObject
) -> None:
    claims, payments = history
    dropped = data.draw(st.sampled_from(payments))
    kept = [p for p in payments if p is not dropped]
    result = age_fund_claims(claims, kept, as_of=DAY + timedelta(400), terms_days=TERMS)
    assert {f.kind for f in result.findings} == {BreakKind.FUND_CLAIM_OVERDUE}
    assert {f.counterpart for f in result.findings} == {dropped.account}
    assert sum(f.amount_fen for f in result.findings) == dropped.amount_fen


@given(fund_history(), st.integers(1, 10**6))
def test_paying_more_than_owed_is_exactly_one_over_payment(
    history: tuple[list[FundClaim], list[FundPayment]], extra: int
) -> None:
    claims, payments = history
    first = payments[0]
    more = [*payments, FundPayment(first.account, "EXTRA", first.value_date, extra)]
    result = age_fund_claims(claims, more, as_of=DAY + timedelta(400), terms_days=TERMS)
    [finding] = result.findings
    assert (finding.kind, finding.amount_fen, finding.counterpart) == (
        BreakKind.FUND_OVERPAID,
        extra,
        first.account,
    )


def test_the_matchers_kinds_are_the_runs_break_kinds() -> None:
    from reconciliation.checks.base import BreakKind as RunKind

    assert {k.value for k in BreakKind} <= {k.value for k in RunKind}
