"""The one shape of a bug check: `invariant(condition, message)` raises `InvariantError`.

`InvariantError` is an `AssertionError`, never a business error (`CardError`, `TerminalError`,
`LedgerError`, `ClearingError`), so no handler of expected failures swallows a bug; and unlike
`assert`, the check still runs under `python -O`. cardio and the ledger import nothing of ours,
so the ledger keeps an identical copy (ledger/errors.py); terminals import this one.
"""

from __future__ import annotations

__all__ = ["InvariantError", "invariant"]


class InvariantError(AssertionError):
    """A broken invariant: a bug, never an expected failure; caught only at the top level."""


def invariant(condition: bool, message: str) -> None:
    """Raise InvariantError if `condition` is false (unlike `assert`, also under `python -O`)."""
    if not condition:
        raise InvariantError(message)
