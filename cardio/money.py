"""The one money formatter: integer fen as yuan text, exact (integer arithmetic, never float).

People read "1,234.56" (`yuan(fen)`); a file format that wants the bare decimal (the ISO 20022
amount type) asks for `yuan(fen, grouped=False)` -> "1234.56". It lives in cardio, the lowest
package both the terminals and clearing import; amounts are integer fen everywhere else.
"""

from __future__ import annotations

__all__ = ["FEN_PER_YUAN", "yuan"]

FEN_PER_YUAN = 100


def yuan(fen: int, *, grouped: bool = True) -> str:
    """Fen as yuan with two decimals: 123456 -> "1,234.56" (grouped) or "1234.56"; -5 -> "-0.05"."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{whole:,}.{cents:02d}" if grouped else f"{sign}{whole}.{cents:02d}"
