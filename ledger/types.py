"""The ledger's public value types: ledgers, accounts, transfers, balances and result codes.

Modelled on TigerBeetle's data model. Pure values only: no I/O here, and nothing of cards or HTTP.

Conventions
- Ids (account, transfer, pending_id, reverses_id, user_data_128) are ints in 1 .. 2**128-1
  (TigerBeetle's u128), chosen by the client; 0 means "none". `ledger.ids` makes deterministic
  ids from string keys (`account_id("card:3100000000000001")`).
- Ledger ids are ints in 1 .. 2**32-1; account and transfer `code`s in 1 .. 2**16-1.
- Amounts and balances are int minor units (fen for CNY) in 0 .. 2**63-1 (PostgreSQL bigint).
- Timestamps are assigned by the ledger: int nanoseconds since the Unix epoch, unique and
  strictly increasing across the whole ledger database. Clients leave `timestamp` at 0.
- Batch calls return one result per item, in order. A transfer's result is the first failing
  check in the order the members of `CreateTransferResult` are declared (see its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag, StrEnum

ID_MAX = 2**128 - 1
LEDGER_ID_MAX = 2**32 - 1
CODE_MAX = 2**16 - 1
AMOUNT_MAX = 2**63 - 1
USER_DATA_64_MAX = 2**63 - 1
USER_DATA_32_MAX = 2**32 - 1
TIMEOUT_S_MAX = 2**31 - 1

# Bounds (TIGER_STYLE): every batch call and every page is bounded. 8,190 is TigerBeetle's
# batch size for one message; we keep the same figure.
BATCH_MAX = 8190
PAGE_MAX = 8190
PAGE_DEFAULT = 100


class AccountFlags(IntFlag):
    NONE = 0
    LINKED = 1 << 0
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1 << 1
    CREDITS_MUST_NOT_EXCEED_DEBITS = 1 << 2


ACCOUNT_FLAGS_CLIENT = (
    AccountFlags.LINKED
    | AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
)


class TransferFlags(IntFlag):
    NONE = 0
    LINKED = 1 << 0
    PENDING = 1 << 1
    POST_PENDING_TRANSFER = 1 << 2
    VOID_PENDING_TRANSFER = 1 << 3
    # Set only by the ledger itself on the row that releases a pending transfer whose timeout
    # passed. A client that sets it gets `flags_are_reserved`.
    EXPIRED = 1 << 15


TRANSFER_FLAGS_CLIENT = (
    TransferFlags.LINKED
    | TransferFlags.PENDING
    | TransferFlags.POST_PENDING_TRANSFER
    | TransferFlags.VOID_PENDING_TRANSFER
)


@dataclass(frozen=True, slots=True)
class LedgerSpec:
    """A ledger: one currency with its scale (CNY in fen: scale 2)."""

    id: int
    name: str
    code: str = "CNY"
    scale: int = 2


@dataclass(frozen=True, slots=True)
class Account:
    """An account as the client creates it. Balances live in `AccountState`."""

    id: int
    ledger: int
    code: int
    name: str
    flags: AccountFlags = AccountFlags.NONE
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0


@dataclass(frozen=True, slots=True)
class Transfer:
    """A transfer as the client submits it, or as stored (then `timestamp` is set).

    - plain: debit, credit, amount > 0, ledger, code.
    - PENDING: reserves `amount`; `timeout_s` > 0 makes it expire after that many seconds.
    - POST_PENDING_TRANSFER / VOID_PENDING_TRANSFER: `pending_id` names the pending transfer;
      debit/credit/ledger/code may be 0 (taken from the pending transfer) or must match it;
      `amount` 0 means the full pending amount, a smaller amount posts part of it (the rest is
      released). A void's amount is 0 or the pending amount.
    - `reverses_id`: this transfer corrects an earlier posted transfer by moving (part of) its
      amount back: it must swap the original's accounts and the reversals of one transfer may
      not add up to more than its amount.
    - `effective_at`: optional back-dating, nanoseconds since the epoch (0 = none).
    """

    id: int
    debit_account_id: int
    credit_account_id: int
    amount: int
    ledger: int
    code: int
    flags: TransferFlags = TransferFlags.NONE
    pending_id: int = 0
    timeout_s: int = 0
    reverses_id: int = 0
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    effective_at: int = 0
    timestamp: int = 0


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """The four balances of an account at one moment (`timestamp`, ledger nanoseconds)."""

    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    timestamp: int = 0

    @property
    def credit_balance(self) -> int:
        """Posted balance of a credit-normal account (a liability such as `card:<no>`)."""
        return self.credits_posted - self.debits_posted

    @property
    def debit_balance(self) -> int:
        """Posted balance of a debit-normal account (an asset such as `bank:escrow`)."""
        return self.debits_posted - self.credits_posted

    @property
    def credit_available(self) -> int:
        """What a credit-normal account may still spend: pending debits count against it."""
        return self.credits_posted - self.debits_posted - self.debits_pending


@dataclass(frozen=True, slots=True)
class AccountState:
    """An account with its current balances and the ledger timestamp of its creation."""

    account: Account
    balance: AccountBalance
    timestamp: int

    @property
    def id(self) -> int:
        return self.account.id

    @property
    def name(self) -> str:
        return self.account.name


@dataclass(frozen=True, slots=True)
class AccountEntry:
    """One transfer as seen from one account, with the account's balances before and after."""

    transfer: Transfer
    account_id: int
    is_debit: bool
    balance_before: AccountBalance
    balance_after: AccountBalance


class CreateLedgerResult(StrEnum):
    OK = "ok"
    ID_MUST_NOT_BE_ZERO = "id_must_not_be_zero"
    ID_OUT_OF_RANGE = "id_out_of_range"
    CODE_INVALID = "code_invalid"
    SCALE_INVALID = "scale_invalid"
    NAME_MUST_NOT_BE_EMPTY = "name_must_not_be_empty"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    EXISTS_WITH_DIFFERENT_SCALE = "exists_with_different_scale"
    EXISTS_WITH_DIFFERENT_NAME = "exists_with_different_name"
    EXISTS = "exists"


class CreateAccountResult(StrEnum):
    """Per-account outcome; the first failing check in this declaration order wins."""

    OK = "ok"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    ID_MUST_BE_INTEGER = "id_must_be_integer"
    ID_MUST_NOT_BE_ZERO = "id_must_not_be_zero"
    ID_MUST_NOT_BE_INT_MAX = "id_must_not_be_int_max"
    ID_OUT_OF_RANGE = "id_out_of_range"
    FLAGS_ARE_RESERVED = "flags_are_reserved"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    USER_DATA_OUT_OF_RANGE = "user_data_out_of_range"
    LEDGER_MUST_NOT_BE_ZERO = "ledger_must_not_be_zero"
    LEDGER_OUT_OF_RANGE = "ledger_out_of_range"
    CODE_MUST_NOT_BE_ZERO = "code_must_not_be_zero"
    CODE_OUT_OF_RANGE = "code_out_of_range"
    NAME_MUST_NOT_BE_EMPTY = "name_must_not_be_empty"
    NAME_TOO_LONG = "name_too_long"
    EXISTS_WITH_DIFFERENT_FLAGS = "exists_with_different_flags"
    EXISTS_WITH_DIFFERENT_USER_DATA_128 = "exists_with_different_user_data_128"
    EXISTS_WITH_DIFFERENT_USER_DATA_64 = "exists_with_different_user_data_64"
    EXISTS_WITH_DIFFERENT_USER_DATA_32 = "exists_with_different_user_data_32"
    EXISTS_WITH_DIFFERENT_LEDGER = "exists_with_different_ledger"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    EXISTS_WITH_DIFFERENT_NAME = "exists_with_different_name"
    EXISTS = "exists"
    LEDGER_NOT_FOUND = "ledger_not_found"
    NAME_ALREADY_USED = "name_already_used"


class CreateTransferResult(StrEnum):
    """Per-transfer outcome; the first failing check in this declaration order wins.

    Order: chain state, then checks of the transfer's own fields (no database needed), then the
    idempotency checks against an existing transfer with the same id (`exists*`) or an id that
    failed before (its original code, or `id_already_failed` if the fields differ), then checks
    against the ledger's state (accounts, the pending or reversed transfer, balances).

    In a linked chain the first member that is not `ok` (`exists` included) keeps its code and
    every other member gets `linked_event_failed`; a chain whose every member is `exists` is an
    idempotent retry (ledger/README.md, "Flags and linked chains").
    """

    OK = "ok"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    TIMESTAMP_MUST_BE_ZERO = "timestamp_must_be_zero"
    # field types and ranges (malformed input)
    ID_MUST_BE_INTEGER = "id_must_be_integer"
    ID_MUST_NOT_BE_ZERO = "id_must_not_be_zero"
    ID_MUST_NOT_BE_INT_MAX = "id_must_not_be_int_max"
    ID_OUT_OF_RANGE = "id_out_of_range"
    FLAGS_ARE_RESERVED = "flags_are_reserved"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    DEBIT_ACCOUNT_ID_INVALID = "debit_account_id_invalid"
    CREDIT_ACCOUNT_ID_INVALID = "credit_account_id_invalid"
    PENDING_ID_INVALID = "pending_id_invalid"
    REVERSES_ID_INVALID = "reverses_id_invalid"
    AMOUNT_MUST_BE_INTEGER = "amount_must_be_integer"
    AMOUNT_MUST_NOT_BE_NEGATIVE = "amount_must_not_be_negative"
    AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
    LEDGER_INVALID = "ledger_invalid"
    CODE_INVALID = "code_invalid"
    USER_DATA_OUT_OF_RANGE = "user_data_out_of_range"
    TIMEOUT_INVALID = "timeout_invalid"
    EFFECTIVE_AT_INVALID = "effective_at_invalid"
    # plain and pending transfers
    DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO = "debit_account_id_must_not_be_zero"
    CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO = "credit_account_id_must_not_be_zero"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    PENDING_ID_MUST_BE_ZERO = "pending_id_must_be_zero"
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = "timeout_reserved_for_pending_transfer"
    LEDGER_MUST_NOT_BE_ZERO = "ledger_must_not_be_zero"
    CODE_MUST_NOT_BE_ZERO = "code_must_not_be_zero"
    AMOUNT_MUST_NOT_BE_ZERO = "amount_must_not_be_zero"
    # post / void
    PENDING_ID_MUST_NOT_BE_ZERO = "pending_id_must_not_be_zero"
    PENDING_ID_MUST_BE_DIFFERENT = "pending_id_must_be_different"
    REVERSAL_MUST_NOT_BE_TWO_PHASE = "reversal_must_not_be_two_phase"
    REVERSES_ID_MUST_BE_DIFFERENT = "reverses_id_must_be_different"
    # idempotency
    EXISTS_WITH_DIFFERENT_FLAGS = "exists_with_different_flags"
    EXISTS_WITH_DIFFERENT_PENDING_ID = "exists_with_different_pending_id"
    EXISTS_WITH_DIFFERENT_TIMEOUT = "exists_with_different_timeout"
    EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID = "exists_with_different_debit_account_id"
    EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID = "exists_with_different_credit_account_id"
    EXISTS_WITH_DIFFERENT_AMOUNT = "exists_with_different_amount"
    EXISTS_WITH_DIFFERENT_REVERSES_ID = "exists_with_different_reverses_id"
    EXISTS_WITH_DIFFERENT_USER_DATA_128 = "exists_with_different_user_data_128"
    EXISTS_WITH_DIFFERENT_USER_DATA_64 = "exists_with_different_user_data_64"
    EXISTS_WITH_DIFFERENT_USER_DATA_32 = "exists_with_different_user_data_32"
    EXISTS_WITH_DIFFERENT_EFFECTIVE_AT = "exists_with_different_effective_at"
    EXISTS_WITH_DIFFERENT_LEDGER = "exists_with_different_ledger"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    EXISTS = "exists"
    ID_ALREADY_FAILED = "id_already_failed"
    # state: accounts
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER = "accounts_must_have_the_same_ledger"
    # the transfer's ledger differs from its accounts' ledger (TigerBeetle:
    # transfer_must_have_the_same_ledger_as_accounts)
    LEDGER_MUST_MATCH = "ledger_must_match"
    # state: the pending transfer named by pending_id
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID = (
        "pending_transfer_has_different_debit_account_id"
    )
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID = (
        "pending_transfer_has_different_credit_account_id"
    )
    PENDING_TRANSFER_HAS_DIFFERENT_LEDGER = "pending_transfer_has_different_ledger"
    PENDING_TRANSFER_HAS_DIFFERENT_CODE = "pending_transfer_has_different_code"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = "pending_transfer_has_different_amount"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    # state: the transfer named by reverses_id
    REVERSED_TRANSFER_NOT_FOUND = "reversed_transfer_not_found"
    REVERSED_TRANSFER_NOT_POSTED = "reversed_transfer_not_posted"
    REVERSAL_MUST_SWAP_ACCOUNTS = "reversal_must_swap_accounts"
    REVERSAL_LEDGER_MUST_MATCH = "reversal_ledger_must_match"
    EXCEEDS_REVERSIBLE_AMOUNT = "exceeds_reversible_amount"
    # state: balances
    OVERFLOWS_DEBITS_PENDING = "overflows_debits_pending"
    OVERFLOWS_CREDITS_PENDING = "overflows_credits_pending"
    OVERFLOWS_DEBITS_POSTED = "overflows_debits_posted"
    OVERFLOWS_CREDITS_POSTED = "overflows_credits_posted"
    OVERFLOWS_DEBITS = "overflows_debits"
    OVERFLOWS_CREDITS = "overflows_credits"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"

    @property
    def ok(self) -> bool:
        return self is CreateTransferResult.OK or self is CreateTransferResult.EXISTS


# Failures that depend on the ledger's state: a retry might succeed later, which would break
# exactly-once. The ledger remembers the id with its code so a replay keeps failing the same way.
TRANSFER_RESULTS_REMEMBERED = frozenset(
    r
    for r in CreateTransferResult
    if list(CreateTransferResult).index(r)
    >= list(CreateTransferResult).index(CreateTransferResult.DEBIT_ACCOUNT_NOT_FOUND)
)
