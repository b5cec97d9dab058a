"""The ledger's exceptions: one hierarchy, each with a stable code and a message saying what to do.

Per-item outcomes of a batch are result enums (ledger.types), never exceptions: these are for
a call that cannot be accepted as a whole, or a database conflict the caller should retry.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every ledger error. `code` is stable; `http_status` is a hint for the API layer."""

    code = "ledger_error"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BatchTooLargeError(LedgerError):
    code = "batch_too_large"
    http_status = 413


class BatchMalformedError(LedgerError):
    """The batch is not a list of Transfer (or Account) values."""

    code = "batch_malformed"
    http_status = 400


class PageTooLargeError(LedgerError):
    code = "page_too_large"
    http_status = 400


class InvalidArgumentError(LedgerError):
    code = "invalid_argument"
    http_status = 400


class LedgerConflictError(LedgerError):
    """A concurrent transaction inserted the same id first; retry the whole database transaction.

    Raised only when the caller owns the connection: the ledger's own transactions retry.
    """

    code = "ledger_conflict"
    http_status = 409


class LedgerClosedError(LedgerError):
    code = "ledger_closed"
    http_status = 503


class InvariantError(LedgerError):
    """A bug: an internal invariant failed. Never caught below the top level."""

    code = "invariant_failed"


def invariant(condition: bool, message: str) -> None:
    """Raise InvariantError if `condition` is false (unlike `assert`, also under `python -O`)."""
    if not condition:
        raise InvariantError(message)
