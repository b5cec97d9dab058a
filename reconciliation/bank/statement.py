"""A bank statement as reconciliation sees it: entries in integer fen, refused entries with their
reason, and the typed errors that refuse a whole file. Pure values, no I/O.

Amounts are signed from the escrow account's side where a sign is needed: a credit (money in)
is positive, a debit (money out, e.g. a payout) negative.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime

from clearing.errors import ClearingError

STATEMENT_BYTES_MAX = 50 * 1024 * 1024  # one account's day: far below this
ENTRIES_MAX = 100_000  # per file
DETAILS_PER_ENTRY_MAX = 10_000  # transaction details of one (batch) entry
REF_LENGTH_MAX = 35  # ISO 20022 Max35Text: every reference we keep
TEXT_LENGTH_MAX = 500  # remittance and additional information kept per entry or detail
CURRENCY = "CNY"


class StatementError(ClearingError):
    """A statement file refused as a whole: nothing of it is stored."""

    code = "bank_statement_refused"
    status = 422
    title = "The bank statement cannot be imported"


class StatementMalformed(StatementError):
    code = "bank_statement_malformed"


class StatementTooLarge(StatementError):
    code = "bank_statement_too_large"
    status = 413


class StatementWrongAccount(StatementError):
    """A statement of an account other than the escrow account the payouts are paid from."""

    code = "bank_statement_wrong_account"


class StatementConflict(StatementError):
    """The same statement id imported before with other content."""

    code = "bank_statement_conflict"
    status = 409


class Direction(enum.StrEnum):
    CREDIT = "credit"  # CRDT: money into the escrow account
    DEBIT = "debit"  # DBIT: money out of it


class Refusal(enum.StrEnum):
    """Why one entry was refused (kept with the statement, never booked or matched), in the
    order the checks run."""

    AMOUNT_MISSING = "amount_missing"
    AMOUNT_INVALID = "amount_invalid"  # not a positive decimal with at most two places
    CURRENCY_NOT_CNY = "currency_not_cny"
    DIRECTION_INVALID = "direction_invalid"  # CdtDbtInd neither CRDT nor DBIT
    DATE_MISSING = "date_missing"  # neither a booking nor a value date
    DATE_INVALID = "date_invalid"
    DETAIL_INVALID = "detail_invalid"  # a transaction detail's amount or direction
    DETAILS_DO_NOT_ADD_UP = "details_do_not_add_up"  # batch details' sum is not the entry's
    TOO_MANY_DETAILS = "too_many_details"


@dataclass(frozen=True, slots=True)
class EntryDetail:
    """One transaction of an entry (a batch entry has several): its references and parties."""

    amount_fen: int | None  # None: the detail has no amount of its own (the entry's)
    end_to_end_id: str | None
    bank_ref: str | None  # TxDtls/Refs/AcctSvcrRef
    batch_ref: str | None  # Refs/PmtInfId, else Refs/MsgId: the instruction file it came from
    remittance: str | None
    counterparty_name: str | None  # the debtor of a credit, the creditor of a debit
    counterparty_account: str | None


@dataclass(frozen=True, slots=True)
class BankEntry:
    """One booked entry (Ntry) of the statement."""

    entry_no: int  # 1-based position in its statement
    bank_ref: str  # AcctSvcrRef, else "<statement id>#<NtryRef or entry no>"
    amount_fen: int
    direction: Direction
    booking_date: date
    value_date: date
    reversal: bool
    batch_ref: str | None  # NtryDtls/Btch/PmtInfId or MsgId
    info: str | None  # AddtlNtryInf
    details: tuple[EntryDetail, ...]

    @property
    def signed_fen(self) -> int:
        return self.amount_fen if self.direction is Direction.CREDIT else -self.amount_fen


@dataclass(frozen=True, slots=True)
class RefusedEntry:
    entry_no: int
    bank_ref: str  # as for a BankEntry
    reason: Refusal
    detail: str


@dataclass(frozen=True, slots=True)
class BankStatement:
    """One Stmt of a camt.053 file: one account, its balances and its entries."""

    message_id: str
    statement_id: str
    account: str
    currency: str
    created_at: datetime | None
    opening_fen: int | None  # OPBD, signed
    closing_fen: int | None  # CLBD, signed
    entries: tuple[BankEntry, ...]
    refused: tuple[RefusedEntry, ...]
    not_booked: int  # entries still pending (Sts PDNG/INFO): left for a later statement
