"""Matchers 4 (Stripe's charges against what clearing posted) and 6 (billers' confirmation files
against bill payments), pure. Hypothesis: a valid day leaves no break; dropping or altering one
item leaves exactly one break of the right kind."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from reconciliation.billers.matching import (
    BillerBreakKind,
    BillPaid,
    ConfirmationLine,
    match_billers,
)
from reconciliation.checks.base import BreakKind
from reconciliation.stripe.matching import (
    PostedPayment,
    StripeBreakKind,
    StripeCharge,
    StripePayout,
    match_charges,
    stripe_payouts,
)

DAY = date(2026, 12, 5)
AT = datetime(2026, 12, 5, 3, tzinfo=UTC)

payments = st.lists(
    st.tuples(
        st.integers(1, 500_000),  # amount
        st.integers(0, 3_000),  # fee
        st.booleans(),  # a top-up (fee booked) or a bill (no fee booked)
    ),
    min_size=1,
    max_size=25,
)


def stripe_day(
    specs: list[tuple[int, int, bool]],
) -> tuple[list[StripeCharge], list[PostedPayment]]:
    charges, posted = [], []
    for n, (amount, fee, topup) in enumerate(specs):
        pi = f"pi_{n:04d}"
        charges.append(
            StripeCharge(f"txn_{n}", f"ch_{n}", pi, amount, fee, AT + timedelta(minutes=n))
        )
        what, ref = ("topup", f"tu_{n}") if topup else ("bill", f"bp_{n}")
        posted.append(PostedPayment(pi, what, ref, amount, fee if topup else None, AT))
    return charges, posted


@given(payments)
def test_a_valid_stripe_day_has_no_break(specs: list[tuple[int, int, bool]]) -> None:
    charges, posted = stripe_day(specs)
    result = match_charges(charges, posted)
    assert result.findings == ()
    assert result.matched == result.total == len(specs)


@given(payments, st.data())
def test_a_charge_never_posted_is_one_unposted_break(
    specs: list[tuple[int, int, bool]], data: st.DataObject
) -> None:
    charges, posted = stripe_day(specs)
    gone = data.draw(st.integers(0, len(posted) - 1))
    dropped = posted.pop(gone)
    [finding] = match_charges(charges, posted).findings
    assert finding.kind is StripeBreakKind.STRIPE_PAYMENT_UNPOSTED
    assert finding.key == f"charge:ch_{gone}"
    assert finding.amount_fen == dropped.amount_fen


@given(payments, st.data())
def test_a_posting_stripe_never_charged_is_one_unknown_break(
    specs: list[tuple[int, int, bool]], data: st.DataObject
) -> None:
    charges, posted = stripe_day(specs)
    gone = data.draw(st.integers(0, len(charges) - 1))
    charges.pop(gone)
    [finding] = match_charges(charges, posted).findings
    assert finding.kind is StripeBreakKind.STRIPE_PAYMENT_UNKNOWN
    assert finding.key == f"payment:pi_{gone:04d}"


@given(payments, st.data(), st.integers(1, 1_000))
def test_an_altered_fee_or_amount_is_one_break(
    specs: list[tuple[int, int, bool]], data: st.DataObject, delta: int
) -> None:
    charges, posted = stripe_day(specs)
    n = data.draw(st.integers(0, len(charges) - 1))
    fee_booked = posted[n].fee_fen is not None
    alter_fee = fee_booked and data.draw(st.booleans())
    if alter_fee:
        charges[n] = replace(charges[n], fee_fen=charges[n].fee_fen + delta)
    else:
        charges[n] = replace(charges[n], amount_fen=charges[n].amount_fen + delta)
    [finding] = match_charges(charges, posted).findings
    expected = (
        StripeBreakKind.STRIPE_FEE_MISMATCH if alter_fee else StripeBreakKind.STRIPE_AMOUNT_MISMATCH
    )
    assert (finding.kind, finding.amount_fen) == (expected, delta)


def test_a_bill_paid_through_stripe_does_not_compare_fees() -> None:
    charges, posted = stripe_day([(5_000, 150, False)])
    assert match_charges(charges, posted).findings == ()


def test_payouts_go_to_the_bank_matcher_as_credits_into_escrow() -> None:
    found = stripe_payouts(
        [
            StripePayout("po_1", 9_700, DAY, "paid"),
            StripePayout("po_2", 500, DAY, "failed"),
            StripePayout("po_3", 800, DAY, "canceled"),
        ]
    )
    assert [(p.key, p.signed_fen, p.end_to_end_id) for p in found] == [
        ("stripe:po_1", 9_700, "po_1")
    ]


def test_every_kind_is_a_break_kind_of_the_run() -> None:
    for kind in (*StripeBreakKind, *BillerBreakKind):
        assert BreakKind(kind.value).value == kind.value


bills = st.lists(
    st.tuples(st.sampled_from(["water", "power"]), st.integers(1, 90_000)), min_size=1, max_size=25
)


def biller_day(specs: list[tuple[str, int]]) -> tuple[list[BillPaid], list[ConfirmationLine]]:
    paid, lines = [], []
    for n, (biller, amount) in enumerate(specs):
        paid.append(BillPaid(f"bp_{n}", biller, amount, f"B{n}", DAY))
        lines.append(ConfirmationLine(biller, DAY, f"bp_{n}", f"ack_{n}", amount, f"B{n}"))
    return paid, lines


@given(bills, st.booleans())
def test_a_confirmed_day_has_no_break(specs: list[tuple[str, int]], echo: bool) -> None:
    paid, lines = biller_day(specs)
    if echo:  # the biller lists a confirmation again in the next file: no break
        lines.append(replace(lines[0], file_day=DAY + timedelta(days=1)))
    result = match_billers(paid, lines, as_of=DAY)
    assert result.findings == ()
    assert result.matched == result.total == len(specs)


@given(bills, st.data())
def test_an_unconfirmed_payment_is_one_break(
    specs: list[tuple[str, int]], data: st.DataObject
) -> None:
    paid, lines = biller_day(specs)
    n = data.draw(st.integers(0, len(lines) - 1))
    lines.pop(n)
    [finding] = match_billers(paid, lines, as_of=DAY).findings
    assert (finding.kind, finding.key) == (BillerBreakKind.BILLER_UNCONFIRMED, f"payment:bp_{n}")
    assert finding.counterpart == paid[n].biller
    assert match_billers(paid, lines, as_of=DAY, grace_days=1).findings == ()


@given(bills, st.data())
def test_a_confirmation_we_never_paid_is_one_break(
    specs: list[tuple[str, int]], data: st.DataObject
) -> None:
    paid, lines = biller_day(specs)
    n = data.draw(st.integers(0, len(paid) - 1))
    paid.pop(n)
    [finding] = match_billers(paid, lines, as_of=DAY).findings
    assert finding.kind is BillerBreakKind.BILLER_CONFIRMATION_UNEXPLAINED
    assert finding.details["payment_id"] == f"bp_{n}"


def test_a_confirmation_for_another_amount_is_unexplained_and_the_payment_unconfirmed() -> None:
    paid, lines = biller_day([("water", 5_000)])
    lines[0] = replace(lines[0], amount_fen=4_000)
    kinds = sorted(f.kind for f in match_billers(paid, lines, as_of=DAY).findings)
    assert kinds == [
        BillerBreakKind.BILLER_CONFIRMATION_UNEXPLAINED,
        BillerBreakKind.BILLER_UNCONFIRMED,
    ]
