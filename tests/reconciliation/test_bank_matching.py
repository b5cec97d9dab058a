"""Matcher 5 (bank lines against payouts), pure: references, batch lines, the date tolerance on
both sides, and Hypothesis: a statement that pays every payout (split, batched or shifted
within the tolerance) leaves no break; leaving one payout unpaid leaves exactly one."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciliation.bank.bankdays import add_bank_days, bank_days_between
from reconciliation.bank.findings import BankBreakKind as BreakKind
from reconciliation.bank.matching import (
    ExpectedPayout,
    LineItem,
    MatchRule,
    PayoutSource,
    line_items,
    match_bank,
)
from reconciliation.bank.statement import BankEntry, Direction, EntryDetail

MONDAY = date(2026, 11, 30)
TOLERANCE = 2


def payout(code: str, fen: int, day: date = MONDAY, batch: str = "") -> ExpectedPayout:
    return ExpectedPayout(
        key=f"settlement:{day}:{code}",
        source=PayoutSource.SETTLEMENT,
        counterpart=code,
        signed_fen=-fen,
        expected_date=day,
        end_to_end_id=f"OC{day:%Y%m%d}-{code}",
        batch_refs=frozenset({batch}) if batch else frozenset(),
    )


def line(
    ref: str, fen: int, day: date = MONDAY, e2e: str | None = None, batch: str = ""
) -> LineItem:
    return LineItem(ref, -fen, day, e2e, frozenset({batch}) if batch else frozenset())


def kinds(result: object) -> Counter[str]:
    return Counter(str(f.kind) for f in result.findings)  # type: ignore[attr-defined]


def test_a_line_naming_the_payout_matches_it() -> None:
    p = payout("bus-1", 5000)
    result = match_bank(
        [p], [line("B1", 5000, e2e=p.end_to_end_id)], as_of=MONDAY, tolerance_days=2
    )
    assert result.findings == ()
    assert [m.rule for m in result.matches] == [MatchRule.REFERENCE]
    assert result.auto_match_rate == 1.0


def test_a_missing_bank_credit_for_one_operator_is_exactly_one_break() -> None:
    paid, unpaid = payout("bus-1", 5000), payout("bus-2", 7000)
    as_of = add_bank_days(MONDAY, TOLERANCE + 1)
    result = match_bank(
        [paid, unpaid], [line("B1", 5000, e2e=paid.end_to_end_id)], as_of=as_of, tolerance_days=2
    )
    [finding] = result.findings
    assert finding.kind is BreakKind.BANK_CREDIT_MISSING
    assert (finding.counterpart, finding.amount_fen, finding.key) == (
        "bus-2",
        7000,
        f"payout:{unpaid.key}",
    )
    assert result.auto_match_rate == pytest.approx(2 / 3)


def test_an_unpaid_payout_within_its_tolerance_is_no_break_yet() -> None:
    p = payout("bus-1", 5000)
    as_of = add_bank_days(MONDAY, TOLERANCE)
    result = match_bank([p], [], as_of=as_of, tolerance_days=TOLERANCE)
    assert result.findings == ()
    assert result.not_due == (p.key,)


def test_a_batch_line_naming_the_file_pays_several_payouts() -> None:
    payouts = [payout(f"bus-{n}", 1000 * n, batch="ONECARD-SETTLE-20261129-1") for n in (1, 2, 3)]
    batch = line("B1", 6000, batch="ONECARD-SETTLE-20261129-1")
    result = match_bank(payouts, [batch], as_of=MONDAY, tolerance_days=TOLERANCE)
    assert result.findings == ()
    [match] = result.matches
    assert match.rule is MatchRule.BATCH_REFERENCE
    assert len(match.payout_keys) == 3


def test_a_batch_line_without_reference_pays_a_days_payouts_by_their_sum() -> None:
    payouts = [payout(f"bus-{n}", 1000 * n) for n in (1, 2, 3)]
    later = payout("bus-9", 4000, MONDAY + timedelta(days=7))
    lines = [line("B1", 6000, MONDAY + timedelta(days=1)), line("B2", 4000, later.expected_date)]
    result = match_bank(
        [*payouts, later], lines, as_of=MONDAY + timedelta(days=8), tolerance_days=2
    )
    assert result.findings == ()
    assert {m.rule for m in result.matches} == {MatchRule.BATCH_DATE, MatchRule.AMOUNT_DATE}


def test_a_batch_line_paying_part_of_a_day_is_found_by_its_subset() -> None:
    payouts = [payout(f"bus-{n}", fen) for n, fen in enumerate((1100, 2300, 3700, 5900))]
    lines = [line("B1", 1100 + 5900), line("B2", 2300), line("B3", 3700)]
    result = match_bank(payouts, lines, as_of=MONDAY, tolerance_days=TOLERANCE)
    assert result.findings == ()
    assert any(m.rule is MatchRule.BATCH_DATE and len(m.payout_keys) == 2 for m in result.matches)


@pytest.mark.parametrize("shift", [-TOLERANCE, TOLERANCE])
def test_a_line_within_the_tolerance_either_side_matches(shift: int) -> None:
    p = payout("bus-1", 5000, MONDAY + timedelta(days=14))
    paid = line("B1", 5000, add_bank_days(p.expected_date, shift))
    as_of = p.expected_date + timedelta(days=30)
    result = match_bank([p], [paid], as_of=as_of, tolerance_days=TOLERANCE)
    assert result.findings == ()
    assert [m.rule for m in result.matches] == [MatchRule.AMOUNT_DATE]


@pytest.mark.parametrize("shift", [-TOLERANCE - 1, TOLERANCE + 1])
def test_a_line_beyond_the_tolerance_either_side_is_no_match(shift: int) -> None:
    p = payout("bus-1", 5000, MONDAY + timedelta(days=14))
    paid = line("B1", 5000, add_bank_days(p.expected_date, shift))
    as_of = p.expected_date + timedelta(days=30)
    result = match_bank([p], [paid], as_of=as_of, tolerance_days=TOLERANCE)
    assert kinds(result) == Counter({"bank_credit_missing": 1, "bank_line_unexplained": 1})


def test_a_payout_paid_in_two_parts_or_paid_and_returned() -> None:
    split, bounced = payout("bus-1", 5000), payout("bus-2", 800)
    lines = [
        line("B1", 3000, e2e=split.end_to_end_id),
        line("B2", 2000, e2e=split.end_to_end_id),
        line("B3", 800, e2e=bounced.end_to_end_id),
        LineItem("B4", 800, MONDAY + timedelta(days=1), bounced.end_to_end_id),  # returned
    ]
    as_of = MONDAY + timedelta(days=10)
    result = match_bank([split, bounced], lines, as_of=as_of, tolerance_days=TOLERANCE)
    [finding] = result.findings
    assert (finding.kind, finding.counterpart) == (BreakKind.BANK_CREDIT_MISSING, "bus-2")


def test_a_line_naming_a_payout_with_another_amount_is_one_mismatch() -> None:
    p = payout("bus-1", 5000)
    result = match_bank(
        [p], [line("B1", 4900, e2e=p.end_to_end_id)], as_of=MONDAY, tolerance_days=TOLERANCE
    )
    [finding] = result.findings
    assert (finding.kind, finding.amount_fen) == (BreakKind.BANK_AMOUNT_MISMATCH, 100)


def test_a_batch_entry_with_details_is_one_item_per_detail() -> None:
    details = tuple(
        EntryDetail(fen, f"OC20261130-bus-{n}", None, "F1", None, None, None)
        for n, fen in enumerate((100, 200), start=1)
    )
    entry = BankEntry(1, "REF", 300, Direction.DEBIT, MONDAY, MONDAY, False, "F1", None, details)
    items = line_items(entry)
    assert [(i.ref, i.signed_fen, i.end_to_end_id) for i in items] == [
        ("REF/1", -100, "OC20261130-bus-1"),
        ("REF/2", -200, "OC20261130-bus-2"),
    ]
    single = BankEntry(2, "R2", 50, Direction.CREDIT, MONDAY, MONDAY, False, None, None, ())
    assert line_items(single) == (LineItem("R2", 50, MONDAY, None, frozenset()),)


def test_bank_days_skip_weekends() -> None:
    friday, monday = MONDAY - timedelta(days=3), MONDAY
    assert bank_days_between(friday, monday) == 1
    assert add_bank_days(friday, 1) == monday
    assert add_bank_days(monday, -1) == friday


# --- Hypothesis: a statement that pays every payout ------------------------------------------

MODES = ("reference", "split", "amount_date")
DAY_MODES = ("individual", "batch_reference", "batch_date")


@st.composite
def paid_days(draw: st.DrawFn) -> tuple[list[ExpectedPayout], list[LineItem], list[str], date]:
    """Payouts over a few weeks and a statement paying each of them; also the references of
    lines that pay exactly one payout (dropping one of those leaves one payout unpaid)."""
    payouts: list[ExpectedPayout] = []
    lines: list[LineItem] = []
    singles: list[str] = []
    n_days = draw(st.integers(1, 5))
    starts = draw(st.lists(st.integers(0, 25), min_size=n_days, max_size=n_days, unique=True))
    for day_no, offset in enumerate(sorted(starts)):
        day = MONDAY + timedelta(days=offset)
        file_ref = f"ONECARD-SETTLE-{day:%Y%m%d}-1"
        amounts = draw(st.lists(st.integers(1, 10**7), min_size=1, max_size=6))
        day_payouts = [payout(f"op-{n}", fen, day, file_ref) for n, fen in enumerate(amounts)]
        payouts.extend(day_payouts)
        day_mode = draw(st.sampled_from(DAY_MODES))
        if day_mode != "individual" and len(day_payouts) > 1:
            total = sum(p.signed_fen for p in day_payouts)
            shift = draw(st.integers(-TOLERANCE, TOLERANCE)) if day_mode == "batch_reference" else 0
            ref = file_ref if day_mode == "batch_reference" else ""
            lines.append(
                LineItem(f"D{day_no}", total, add_bank_days(day, shift), None,
                         frozenset({ref}) if ref else frozenset())
            )  # fmt: skip
            continue
        for p in day_payouts:
            mode = draw(st.sampled_from(MODES))
            shift = draw(st.integers(-TOLERANCE, TOLERANCE))
            value_date = add_bank_days(day, shift)
            fen = -p.signed_fen
            if mode == "split" and fen > 1:
                part = draw(st.integers(1, fen - 1))
                lines.append(line(f"{p.key}/1", part, value_date, p.end_to_end_id))
                lines.append(line(f"{p.key}/2", fen - part, value_date, p.end_to_end_id))
                continue
            e2e = p.end_to_end_id if mode != "amount_date" else None
            lines.append(line(p.key, fen, value_date, e2e))
            singles.append(p.key)
    as_of = max(p.expected_date for p in payouts) + timedelta(days=10)
    return payouts, draw(st.permutations(lines)), singles, as_of


@given(paid_days())
def test_a_statement_paying_every_payout_leaves_no_break(
    day: tuple[list[ExpectedPayout], list[LineItem], list[str], date],
) -> None:
    payouts, lines, _, as_of = day
    result = match_bank(payouts, lines, as_of=as_of, tolerance_days=TOLERANCE)
    assert result.findings == ()
    assert result.auto_match_rate == 1.0


@given(paid_days(), st.data())
def test_a_statement_missing_one_payout_leaves_exactly_one_break(
    day: tuple[list[ExpectedPayout], list[LineItem], list[str], date], data: st.DataObject
) -> None:
    payouts, lines, singles, as_of = day
    if not singles:
        return
    dropped = data.draw(st.sampled_from(singles))
    kept = [ln for ln in lines if ln.ref != dropped]
    result = match_bank(payouts, kept, as_of=as_of, tolerance_days=TOLERANCE)
    [finding] = result.findings
    assert finding.kind is BreakKind.BANK_CREDIT_MISSING
    by_key = {p.key: p for p in payouts}
    assert finding.amount_fen == -by_key[dropped].signed_fen
