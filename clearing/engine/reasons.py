"""Why a tap record could not be cleared: the quarantine reason codes, in order of precedence.

Pure. The value is what `tap_records.quarantine_reason` stores (at most 32 characters) and what
finance staff see; values are stable forever once stored.
"""

from __future__ import annotations

import enum


class QuarantineReason(enum.StrEnum):
    """Declared in the order the engine checks them: the first that applies is the reason.

    `decide` checks UNKNOWN_TERMINAL .. BALANCE_CHAIN_BROKEN in this order; the service then
    checks the card's shadow balance, the ledger its rules, and whatever raises on one record
    is RECORD_FAILED (tests/clearing/test_engine_reasons.py asserts every adjacent pair)."""

    UNKNOWN_TERMINAL = "unknown_terminal"  # the terminal is not in the registry
    RECORD_INCONSISTENT = "record_inconsistent"  # fields contradict each other (type, balances)
    TERMINAL_NOT_ALLOWED = "terminal_not_allowed"  # e.g. a clinic record from a bus validator
    UNKNOWN_CARD = "unknown_card"  # the card number was never issued
    BAD_TAC = "bad_tac"  # the TAC does not verify with the issuer key: forged or corrupted
    OCCURRED_IN_FUTURE = "occurred_in_future"  # the tap time is ahead of the back office clock
    COUNTER_REUSED_DIFFERENT_AMOUNT = "counter_reused_different_amount"  # a clone, or tampering
    COUNTER_REUSED = "counter_reused"  # same card counter, same amount, another transaction
    TERMINAL_SEQ_REUSED = "terminal_seq_reused"  # the SAM serial names another card's tap
    GREY_UNRESOLVED = "grey_unresolved"  # torn tap: no later tap of the card proves it yet
    FARE_OUT_OF_RANGE = "fare_out_of_range"  # full fare above the bound: no subsidy claimed
    CLINIC_SPLIT_UNKNOWN = "clinic_split_unknown"  # no insurance split recorded for the visit
    CLINIC_SPLIT_MISMATCH = "clinic_split_mismatch"  # shares differ from the recorded split
    UNKNOWN_LOAD = "unknown_load"  # a load names no pending load
    LOAD_MISMATCH = "load_mismatch"  # the pending load is for another card or amount
    LOAD_NOT_PENDING = "load_not_pending"  # the pending load expired or was cancelled
    BALANCE_CHAIN_BROKEN = "balance_chain_broken"  # the card lost money between two counters
    CARD_BALANCE_INSUFFICIENT = "card_balance_insufficient"  # shadow balance too low (yet)
    LEDGER_REFUSED = "ledger_refused"  # the ledger refused the transfer (see the audit note)
    # Last: found only when clearing the record raised (a value the database or the rules could
    # not take); the error is in the audit note. The rest of the run goes on without it.
    RECORD_FAILED = "record_failed"

    @property
    def retried_automatically(self) -> bool:
        """Reasons that later records can cure: every clearing run looks at them again."""
        return self in RETRIED_AUTOMATICALLY

    @property
    def overridable(self) -> bool:
        """Reasons finance staff may override when they release (the money is real)."""
        return self in OVERRIDABLE


# A torn tap is resolved by the card's later counters; a shadow balance by a later load.
RETRIED_AUTOMATICALLY = frozenset(
    {QuarantineReason.GREY_UNRESOLVED, QuarantineReason.CARD_BALANCE_INSUFFICIENT}
)

# Soft findings: the card did sign (or the card company confirms) the debit. A release with an
# override posts the record despite them; every other reason is checked again on release.
OVERRIDABLE = frozenset({QuarantineReason.BALANCE_CHAIN_BROKEN, QuarantineReason.GREY_UNRESOLVED})

REASON_LENGTH_MAX = 32
