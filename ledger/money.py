"""How people read money on a command line: yuan with two decimals ("1,234.56").

Amounts are integer fen everywhere else; machine output (--json, CSV) stays in fen. The ledger
imports nothing of ours, so its command line formats with this copy of cardio.money.yuan; a test
checks both give the same text.
"""

from __future__ import annotations

FEN_PER_YUAN = 100


def yuan(fen: int) -> str:
    """Fen as yuan, exact (integer arithmetic, no float): 123456 -> "1,234.56", -5 -> "-0.05"."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{whole:,}.{cents:02d}"
