"""The pure rules of paying a bill: what may be paid (and in which order refusals come), and
the confirmation backoff's bounds."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearing.billing.rules import (
    CONFIRM_BACKOFF_BASE_S,
    CONFIRM_BACKOFF_CAP_S,
    CONFIRM_RETRIES_MAX,
    AmountMismatch,
    AmountOverCap,
    Bill,
    BillAlreadyPaid,
    BillChanged,
    BillExpired,
    BillStatus,
    backoff_s,
    mask_card_no,
    require_payable,
)

amounts = st.integers(min_value=1, max_value=10_000_000)


def a_bill(amount_fen: int, status: BillStatus = BillStatus.OPEN) -> Bill:
    return Bill("city-water", "W1001", "B-1", amount_fen, date(2026, 12, 20), "2026-11", status, "")


@given(st.integers(min_value=0, max_value=10_000), st.integers(1, 60), st.integers(1, 4_000))
def test_backoff_never_exceeds_its_cap_and_never_shrinks(
    attempt: int, base: int, extra: int
) -> None:
    cap = base + extra
    wait = backoff_s(attempt, base, cap)
    assert base <= wait <= cap
    assert backoff_s(attempt + 1, base, cap) >= wait
    if base << attempt <= cap:
        assert wait == base << attempt


def test_the_default_schedule_doubles_from_two_seconds_to_its_cap() -> None:
    schedule = [backoff_s(n) for n in range(CONFIRM_RETRIES_MAX)]
    assert schedule[:4] == [2, 4, 8, 16]
    assert max(schedule) <= CONFIRM_BACKOFF_CAP_S
    assert backoff_s(10_000) == CONFIRM_BACKOFF_CAP_S
    assert sum(schedule) < 3_600  # every retry of one task run within the hour
    with pytest.raises(ValueError):
        backoff_s(-1)
    with pytest.raises(ValueError):
        backoff_s(0, CONFIRM_BACKOFF_BASE_S, CONFIRM_BACKOFF_BASE_S - 1)


@given(amounts, amounts, amounts)
def test_only_the_amount_due_within_the_cap_is_payable(due: int, paid: int, cap: int) -> None:
    bill = a_bill(due)
    if paid != due:
        with pytest.raises(AmountMismatch):
            require_payable(bill, "B-1", paid, cap)
    elif paid > cap:
        with pytest.raises(AmountOverCap):
            require_payable(bill, "B-1", paid, cap)
    else:
        require_payable(bill, "B-1", paid, cap)


@given(amounts, st.sampled_from([BillStatus.PAID, BillStatus.EXPIRED]), st.text(max_size=8))
def test_a_paid_or_expired_bill_is_refused_before_anything_else(
    due: int, status: BillStatus, other_id: str
) -> None:
    expected = BillAlreadyPaid if status is BillStatus.PAID else BillExpired
    with pytest.raises(expected, match="nothing was charged|nothing to pay"):
        require_payable(a_bill(due, status), other_id, due + 1, 0)


def test_another_bill_than_the_one_seen_is_refused_with_what_to_do() -> None:
    with pytest.raises(BillChanged, match="look the bill up again"):
        require_payable(a_bill(100), "B-0", 100, 1_000)


def test_a_receipt_shows_only_the_cards_last_four_digits() -> None:
    assert mask_card_no("3100000000001234") == "card ****1234"
