"""The card company's books: the chart of accounts of DESIGN.md as code.

Every account name, its kind and its ledger flags, and every transfer code, live here so
no other module spells an account name by hand. It never moves money itself.
"""

from __future__ import annotations

from clearing.books.chart import (
    BANK_CASH,
    BANK_ESCROW,
    EXPENSE_PSP_FEES,
    REVENUE_COMMISSION,
    STRIPE_BALANCE,
    AccountKind,
    AccountSpec,
    AccountType,
    BooksError,
    InvalidAccountName,
    account_spec,
    card,
    card_deposit,
    card_no_of,
    card_pending,
    insurer,
    parse_account,
    payable,
    subsidy,
    suspense,
)
from clearing.books.codes import LEDGER_CNY, TransferCode
from clearing.books.service import (
    LEDGER_CNY_SPEC,
    AccountsNotOpened,
    account_of,
    ensure_accounts,
    ensure_ledger,
    ledger_account,
    open_books,
)

__all__ = [
    "BANK_CASH",
    "BANK_ESCROW",
    "EXPENSE_PSP_FEES",
    "LEDGER_CNY",
    "LEDGER_CNY_SPEC",
    "REVENUE_COMMISSION",
    "STRIPE_BALANCE",
    "AccountKind",
    "AccountSpec",
    "AccountType",
    "AccountsNotOpened",
    "BooksError",
    "InvalidAccountName",
    "TransferCode",
    "account_of",
    "account_spec",
    "card",
    "card_deposit",
    "card_no_of",
    "card_pending",
    "ensure_accounts",
    "ensure_ledger",
    "insurer",
    "ledger_account",
    "open_books",
    "parse_account",
    "payable",
    "subsidy",
    "suspense",
]
