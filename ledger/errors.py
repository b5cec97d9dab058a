"""The ledger's exceptions: one hierarchy, each with a stable code and a message saying what to do.

Per-item outcomes of a batch are result enums (ledger.types), never exceptions: these are for
a call that cannot be accepted as a whole, or a database conflict the caller should retry.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every ledger error. `code` is stable; `status` is the HTTP status the API answers (one name with ClearingError.status)."""

    code = "ledger_error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BatchTooLargeError(LedgerError):
    code = "batch_too_large"
    status = 413


class BatchMalformedError(LedgerError):
    """The batch is not a list of Transfer (or Account) values."""

    code = "batch_malformed"
    status = 400


class PageTooLargeError(LedgerError):
    code = "page_too_large"
    status = 400


class InvalidArgumentError(LedgerError):
    code = "invalid_argument"
    status = 400


class LedgerConflictError(LedgerError):
    """A concurrent transaction inserted the same id first; retry the whole database transaction.

    Raised only when the caller owns the connection: the ledger's own transactions retry.
    """

    code = "ledger_conflict"
    status = 409


class LedgerClosedError(LedgerError):
    code = "ledger_closed"
    status = 503


class InvariantError(AssertionError):
    """A bug: an internal invariant failed. Never a LedgerError, so no business handler catches it.

    The same shape as cardio.invariant (the ledger imports nothing of ours, so it keeps its copy).
    """


def invariant(condition: bool, message: str) -> None:
    """Raise InvariantError if `condition` is false (unlike `assert`, also under `python -O`)."""
    if not condition:
        raise InvariantError(message)
