"""How people read money on a command line: yuan with two decimals ("1,234.56").

Amounts are integer fen everywhere else; machine output (--json, CSV) stays in fen. The card
layer is the floor of every command line that shows a purse (card, terminal, clearing), so the
formatter lives here; the ledger, which imports nothing of ours, keeps ledger.money (the same
function, checked equal by a test).
"""

from __future__ import annotations

FEN_PER_YUAN = 100


def yuan(fen: int) -> str:
    """Fen as yuan, exact (integer arithmetic, no float): 123456 -> "1,234.56", -5 -> "-0.05"."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{whole:,}.{cents:02d}"
