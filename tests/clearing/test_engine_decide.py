"""The engine's pure decision (record + what is known -> post / duplicate / void / quarantine),
by the thousand with Hypothesis."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from clearing.engine.decide import (
    FULL_FARE_FEN_MAX,
    CardInfo,
    Context,
    Outcome,
    PendingLoadInfo,
    PostedTap,
    SplitInfo,
    Tap,
    TerminalInfo,
    decide,
)
from clearing.engine.reasons import QuarantineReason as R

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CONCESSIONS = {"student": "student", "senior": "senior", "disabled": "disabled"}


@st.composite
def taps(draw: st.DrawFn, kind: str | None = None) -> Tap:
    kind = kind or draw(st.sampled_from(["purchase", "clinic", "load"]))
    amount = draw(st.integers(1 if kind == "load" else 0, 5000))
    before = draw(st.integers(0 if kind == "load" else amount, 100_000))
    after = before + amount if kind == "load" else before - amount
    grey = draw(st.booleans()) and kind != "load"
    return Tap(
        id=draw(st.integers(1, 10**9)),
        terminal_id="0000010000A1",
        kind=kind,
        status="grey" if grey else "complete",
        terminal_seq=draw(st.integers(1, 2**32 - 1)),
        card_no="3100000000000001",
        card_counter=draw(st.integers(0, 65535)),
        txn_type=2 if kind == "load" else draw(st.sampled_from([6, 9])),
        amount_fen=amount,
        balance_before_fen=before,
        balance_after_fen=after,
        occurred_at=NOW - timedelta(minutes=draw(st.integers(0, 10_000))),
        tac=None if grey else draw(st.from_regex(r"\A[0-9A-F]{8}\Z")),
        full_fare_fen=draw(st.integers(0, FULL_FARE_FEN_MAX)),
        insured_fen=draw(st.integers(0, 5000)) if kind == "clinic" else 0,
        visit_id="V-1" if kind == "clinic" else None,
        load_id="L-1" if kind == "load" else None,
    )


def ctx_for(tap: Tap, card_type: str = "adult", **changes: object) -> Context:
    terminal_kind = "clinic" if tap.kind == "clinic" else "bus"
    base = Context(
        now=NOW,
        terminal=TerminalInfo("bus-1", terminal_kind, "L1"),
        card=CardInfo(card_type, "urban"),
        tac_ok=True,
        split=SplitInfo(
            tap.card_no, "urban", tap.amount_fen + tap.insured_fen, tap.insured_fen, tap.amount_fen
        ),
        pending_load=PendingLoadInfo(tap.card_no, tap.amount_fen, "pending"),
        subsidy_schemes=CONCESSIONS,
    )
    return replace(base, **changes)


@given(taps(), st.sampled_from(["adult", "student", "senior", "disabled"]))
def test_a_genuine_complete_record_posts_with_the_right_claims(tap: Tap, card_type: str) -> None:
    tap = replace(tap, status="complete", tac=tap.tac or "0A0B0C0D")
    decision = decide(tap, ctx_for(tap, card_type))
    assert decision.outcome is Outcome.POST
    assert decision.participant_code == "bus-1"
    if tap.kind == "purchase" and card_type != "adult" and tap.full_fare_fen > tap.amount_fen:
        assert decision.subsidy_fen == tap.full_fare_fen - tap.amount_fen
        assert decision.subsidy_scheme == card_type
    else:
        assert decision.subsidy_fen == 0
    assert decision.insured_fen == (tap.insured_fen if tap.kind == "clinic" else 0)


@given(taps(kind="purchase"), st.integers(1, 10**6))
def test_a_fare_above_the_bound_claims_no_subsidy(tap: Tap, excess: int) -> None:
    tap = replace(tap, status="complete", tac="0A0B0C0D", full_fare_fen=FULL_FARE_FEN_MAX + excess)
    assert decide(tap, ctx_for(tap, "senior")).reason is R.FARE_OUT_OF_RANGE
    assert decide(tap, ctx_for(tap, "adult")).outcome is Outcome.POST  # no claim: no bound


@given(taps())
def test_a_record_whose_tac_fails_is_quarantined_as_bad_tac(tap: Tap) -> None:
    tap = replace(tap, status="complete", tac=tap.tac or "0A0B0C0D")
    decision = decide(tap, ctx_for(tap, tac_ok=False))
    assert (decision.outcome, decision.reason) == (Outcome.QUARANTINE, R.BAD_TAC)


@given(taps(), st.integers(1, 10**9))
def test_the_same_transaction_again_is_a_duplicate(tap: Tap, first_id: int) -> None:
    tap = replace(tap, status="complete", tac=tap.tac or "0A0B0C0D")
    posted = replace(PostedTap.of(tap), tap_record_id=first_id)
    decision = decide(tap, ctx_for(tap, same_card_counter=posted, same_terminal_seq=posted))
    assert (decision.outcome, decision.duplicate_of) == (Outcome.DUPLICATE, first_id)


@given(taps(), st.integers(1, 5000))
def test_a_reused_counter_with_another_amount_is_quarantined(tap: Tap, delta: int) -> None:
    tap = replace(tap, status="complete", tac=tap.tac or "0A0B0C0D")
    other = replace(PostedTap.of(tap), amount_fen=tap.amount_fen + delta, terminal_seq=1)
    decision = decide(tap, ctx_for(tap, same_card_counter=other))
    assert decision.reason is R.COUNTER_REUSED_DIFFERENT_AMOUNT


@given(taps(kind="purchase"), st.booleans(), st.booleans())
def test_a_torn_tap_is_proven_voided_or_kept(tap: Tap, later: bool, sibling: bool) -> None:
    grey = replace(tap, status="grey", tac=None)
    other = replace(PostedTap.of(grey), terminal_seq=grey.terminal_seq % (2**32 - 2) + 1)
    decision = decide(
        grey,
        ctx_for(grey, later_counter_posted=later, same_card_counter=other if sibling else None),
    )
    if sibling:
        assert decision.outcome is Outcome.GREY_VOID
    elif later:
        assert decision.outcome is Outcome.GREY_POST
    else:
        assert decision.reason is R.GREY_UNRESOLVED
        forced = decide(grey, ctx_for(grey, overrides=frozenset({R.GREY_UNRESOLVED})))
        assert forced.outcome is Outcome.OVERRIDE_POST


@given(taps(), st.booleans(), st.booleans(), st.booleans())
def test_precedence_terminal_then_card_then_tac(
    tap: Tap, terminal: bool, card: bool, tac_ok: bool
) -> None:
    tap = replace(tap, status="complete", tac=tap.tac or "0A0B0C0D")
    ctx = ctx_for(tap, tac_ok=tac_ok)
    if not terminal:
        ctx = replace(ctx, terminal=None)
    if not card:
        ctx = replace(ctx, card=None)
    decision = decide(tap, ctx)
    if not terminal:
        assert decision.reason is R.UNKNOWN_TERMINAL
    elif not card:
        assert decision.reason is R.UNKNOWN_CARD
    elif not tac_ok:
        assert decision.reason is R.BAD_TAC
    else:
        assert decision.outcome is Outcome.POST


@given(taps(), st.integers(-5000, 5000))
def test_balances_that_do_not_add_up_are_inconsistent(tap: Tap, error: int) -> None:
    broken = replace(tap, balance_after_fen=tap.balance_after_fen + error)
    decision = decide(broken, ctx_for(broken))
    if error and broken.balance_after_fen >= 0:
        assert decision.reason is R.RECORD_INCONSISTENT


@given(taps(kind="purchase"), st.integers(1, 1000))
def test_money_vanishing_between_two_counters_breaks_the_chain(tap: Tap, missing: int) -> None:
    tap = replace(tap, status="complete", tac=tap.tac or "0A0B0C0D", card_counter=5)
    previous = replace(
        PostedTap.of(tap),
        card_counter=4,
        terminal_seq=1,
        balance_after_fen=tap.balance_before_fen + missing,
    )
    decision = decide(tap, ctx_for(tap, previous=previous))
    assert decision.reason is R.BALANCE_CHAIN_BROKEN
    loaded = replace(previous, balance_after_fen=max(0, tap.balance_before_fen - missing))
    assert decide(tap, ctx_for(tap, previous=loaded)).outcome is Outcome.POST


def test_a_clinic_record_must_match_its_split() -> None:
    tap = Tap(
        1,
        "0000020000C1",
        "clinic",
        "complete",
        7,
        "3100000000000001",
        3,
        6,
        1000,
        5000,
        4000,
        NOW,
        "0A0B0C0D",
        insured_fen=4000,
        visit_id="V-1",
    )
    ok = decide(tap, ctx_for(tap))
    assert (ok.outcome, ok.insured_fen, ok.insurer_scheme) == (Outcome.POST, 4000, "urban")
    assert decide(tap, ctx_for(tap, split=None)).reason is R.CLINIC_SPLIT_UNKNOWN
    other = SplitInfo(tap.card_no, "urban", 5000, 3000, 2000)
    assert decide(tap, ctx_for(tap, split=other)).reason is R.CLINIC_SPLIT_MISMATCH
    from_bus = ctx_for(tap, terminal=TerminalInfo("bus-1", "bus"))
    assert decide(tap, from_bus).reason is R.TERMINAL_NOT_ALLOWED


def test_chunk_size_is_bounded_on_both_sides() -> None:
    import pytest

    from clearing.engine.service import CHUNK_RECORDS_MAX, EngineConfig, EngineError

    assert EngineConfig(chunk_records=1).chunk_records == 1
    assert EngineConfig(chunk_records=CHUNK_RECORDS_MAX).chunk_records == CHUNK_RECORDS_MAX
    for bad in (0, CHUNK_RECORDS_MAX + 1):
        with pytest.raises(EngineError):
            EngineConfig(chunk_records=bad)
