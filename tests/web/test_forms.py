"""What the forms take as yuan and as a number: exactly what a person means, nothing else."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clearing.web.forms import Field, InputKind, bind

AMOUNT = Field("amount", "Amount", InputKind.AMOUNT)
NUMBER = Field("card_no", "Card number", InputKind.NUMBER)


def _fen_of(text: str) -> int | None:
    form = bind((AMOUNT,), {"amount": text})
    return None if form.errors else form.amount_fen("amount")


@given(st.integers(min_value=1, max_value=999_999_999_99))
def test_any_amount_written_in_yuan_reads_back_as_its_fen(fen: int) -> None:
    whole, cents = divmod(fen, 100)
    assert _fen_of(f"{whole}.{cents:02d}") == fen
    assert _fen_of(f"¥{whole:,}.{cents:02d}") == fen
    if cents % 10 == 0:
        assert _fen_of(f"{whole}.{cents // 10}") == fen


def test_what_is_not_an_amount_is_refused() -> None:
    for text in ("1e2", "-5", "+5", "12.345", "0", "0.00", "１２", "NaN", "Infinity", ".", ""):
        assert _fen_of(text) is None, text
    assert (_fen_of(".5"), _fen_of("5.")) == (50, 500)


def test_a_card_number_is_ascii_digits() -> None:
    assert not bind((NUMBER,), {"card_no": "3101000000000001"}).errors
    for text in ("３１０１", "²", "١٢٣", "12a"):
        assert bind((NUMBER,), {"card_no": text}).errors, text
