"""How people read money on the command line: cardio's one formatter, `yuan` ("1,234.56").

Amounts are integer fen everywhere else; machine output (--json, CSV) stays in fen.
"""

from __future__ import annotations

from cardio.money import FEN_PER_YUAN, yuan

__all__ = ["FEN_PER_YUAN", "yuan"]
