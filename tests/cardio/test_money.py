"""The one money formatter, cardio.money.yuan: exact for every fen amount, negatives included
(tests/test_habits.py checks the terminals, the command line and settlement files use it)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from cardio.money import yuan

FEN = st.integers(min_value=-(10**12), max_value=10**12)


@given(FEN)
def test_yuan_reads_back_to_the_same_fen_grouped_or_not(fen: int) -> None:
    grouped, bare = yuan(fen), yuan(fen, grouped=False)
    assert Decimal(grouped.replace(",", "")) * 100 == fen
    assert Decimal(bare) * 100 == fen
    assert bare == grouped.replace(",", "")
    assert "," not in bare and bare.split(".")[1].isdigit() and len(bare.split(".")[1]) == 2


def test_negative_amounts_are_not_floored() -> None:
    assert yuan(-5) == "-0.05"
    assert yuan(-195, grouped=False) == "-1.95"
    assert yuan(100_000) == "1,000.00"
