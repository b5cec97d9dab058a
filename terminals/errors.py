"""The error family of the terminals package: one base class, each error with a stable code.

A bug is an `invariant` failure (raised even under `python -O`), never one of these.
"""

from __future__ import annotations

# The bug check is cardio's (one shape for every package), re-exported for terminals' modules.
from cardio.invariant import InvariantError as InvariantError
from cardio.invariant import invariant as invariant


class TerminalError(Exception):
    """Base of every terminals error; `code` is stable and machine-readable."""

    code = "terminal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FeedInvalid(TerminalError):
    """The fare feed has problems; `problems` names file, row and field of each."""

    code = "feed_invalid"

    def __init__(self, problems: list) -> None:  # list[FeedProblem]
        self.problems = problems
        lines = "\n".join(str(problem) for problem in problems[:20])
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"fare feed refused, {len(problems)} problem(s):\n{lines}{more}")


class NoFare(TerminalError):
    """No fare leg rule of the feed prices this ride: the tariff has a hole; fix the feed."""

    code = "no_fare"


class CardRefused(TerminalError):
    """The card may not be used here (deny list, expired, not yet valid, blocked)."""

    code = "card_refused"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InsufficientBalance(TerminalError):
    """The purse holds less than the fare: the passenger must top up."""

    code = "insufficient_balance"


class TornTap(TerminalError):
    """The card left the field during the debit: ask the passenger to present it again."""

    code = "torn_tap"


class SamError(TerminalError):
    """The SAM refused a command (status word in the message)."""

    code = "sam_error"

    def __init__(self, sw: int, message: str) -> None:
        super().__init__(message)
        self.sw = sw


class MacInvalid(TerminalError):
    """MAC2 from the card did not verify: the card is not genuine or the message was altered."""

    code = "mac2_invalid"


class JournalError(TerminalError):
    """The journal cannot store a record: the tap must not be shown as OK."""

    code = "journal_error"


class ListSignatureInvalid(TerminalError):
    """A deny or action list delta failed its Ed25519 signature check and was refused."""

    code = "list_signature_invalid"


class UploadRefused(TerminalError):
    """The clearing service refused an upload (4xx): retrying the same request will not help."""

    code = "upload_refused"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ServiceUnavailable(TerminalError):
    """The clearing service could not be reached or answered 5xx: retry later."""

    code = "service_unavailable"
