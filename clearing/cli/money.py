"""How people read money on the command line: cardio.money.yuan, the one formatter."""

from __future__ import annotations

from cardio.money import FEN_PER_YUAN, yuan

__all__ = ["FEN_PER_YUAN", "yuan"]
