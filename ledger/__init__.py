"""A general double-entry ledger: ledgers, accounts, transfers, balances (TigerBeetle's model).

It knows nothing of cards, buses or HTTP and never imports the other onecard packages.

Public API
- `ledger.types`: LedgerSpec, Account, Transfer, AccountFlags, TransferFlags, AccountBalance,
  AccountState, AccountEntry, CreateLedgerResult, CreateAccountResult, CreateTransferResult,
  BATCH_MAX, PAGE_MAX.
- `ledger.ids`: id_from_key(key), account_id(name), transfer_id(key).
- `ledger.errors`: LedgerError and its subclasses (stable `code`).
- `ledger.writer.Ledger` (async, the only module that moves money):
  `async with await Ledger.open(url) as led:` then create_ledgers, create_accounts,
  create_transfers (one result per item), expire_pending_transfers, plus every read below.
  Each method takes an optional caller-owned SQLAlchemy `AsyncConnection` (`conn=`): the ledger
  then works inside the caller's database transaction and never commits it.
- `ledger.reader.LedgerReader(engine)` (read-only, for reconciliation): lookup_ledgers,
  lookup_accounts, lookup_accounts_by_name, list_accounts, lookup_transfers,
  get_account_transfers (paginated by time range), get_account_history (balance before/after
  every entry), get_balance_as_of (recorded), get_effective_balance_as_of (back-dated postings).
- `ledger.check.check_ledger(conn)`: the offline checker behind `onecard ledger check`.
"""

from ledger.ids import account_id, id_from_key, transfer_id
from ledger.types import (
    BATCH_MAX,
    PAGE_MAX,
    Account,
    AccountBalance,
    AccountEntry,
    AccountFlags,
    AccountState,
    CreateAccountResult,
    CreateLedgerResult,
    CreateTransferResult,
    LedgerSpec,
    Transfer,
    TransferFlags,
)

__all__ = [
    "BATCH_MAX",
    "PAGE_MAX",
    "Account",
    "AccountBalance",
    "AccountEntry",
    "AccountFlags",
    "AccountState",
    "CreateAccountResult",
    "CreateLedgerResult",
    "CreateTransferResult",
    "LedgerSpec",
    "Transfer",
    "TransferFlags",
    "account_id",
    "id_from_key",
    "transfer_id",
]
