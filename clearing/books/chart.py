"""Account names, kinds and flags of the card company's chart of accounts (DESIGN.md).

Pure: no I/O. Names are the ledger's human-readable account names; the ledger derives the
numeric account id from the name, so the same name always means the same account.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

CARD_NO_PATTERN = re.compile(r"^[0-9]{16}$")
# Participant ids, scheme ids and suspense reasons: short slugs, safe in a name and a file.
SLUG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ACCOUNT_NAME_LENGTH_MAX = 128


class BooksError(Exception):
    """Base of the books' errors; `code` is stable and machine-readable."""

    code = "books_error"


class InvalidAccountName(BooksError, ValueError):
    code = "invalid_account_name"


class AccountKind(enum.StrEnum):
    """Where the account sits in the balance sheet; decides its normal balance side."""

    ASSET = "asset"
    LIABILITY = "liability"
    REVENUE = "revenue"
    EXPENSE = "expense"

    @property
    def debit_normal(self) -> bool:
        """Assets and expenses grow with debits; liabilities and revenue with credits."""
        return self in (AccountKind.ASSET, AccountKind.EXPENSE)


class AccountType(enum.IntEnum):
    """One per row of the chart; the value is the ledger account `code`."""

    BANK_ESCROW = 1001
    BANK_CASH = 1002
    STRIPE_BALANCE = 1003
    INSURER = 1101
    SUBSIDY = 1102
    CARD = 2001
    CARD_PENDING = 2002
    CARD_DEPOSIT = 2003
    PAYABLE = 2101
    SUSPENSE = 2901
    REVENUE_COMMISSION = 4001
    EXPENSE_PSP_FEES = 5001


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """Everything the ledger needs to open an account of the chart, from its name."""

    name: str
    type: AccountType
    kind: AccountKind
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool

    @property
    def code(self) -> int:
        return int(self.type)


# prefix -> (type, kind, debits_must_not_exceed_credits)
# Card money is the residents' money: a card account never goes below zero (DESIGN.md).
# A payable never goes below zero either: the card company cannot pay an operator more
# than it was owed (settlement pays net, which is at most what was credited).
_PREFIXED: dict[str, tuple[AccountType, AccountKind, bool]] = {
    "card": (AccountType.CARD, AccountKind.LIABILITY, True),
    "card-pending": (AccountType.CARD_PENDING, AccountKind.LIABILITY, True),
    "card-deposit": (AccountType.CARD_DEPOSIT, AccountKind.LIABILITY, True),
    "payable": (AccountType.PAYABLE, AccountKind.LIABILITY, True),
    "insurer": (AccountType.INSURER, AccountKind.ASSET, False),
    "subsidy": (AccountType.SUBSIDY, AccountKind.ASSET, False),
    "suspense": (AccountType.SUSPENSE, AccountKind.LIABILITY, False),
}

BANK_ESCROW = "bank:escrow"
BANK_CASH = "bank:cash"
STRIPE_BALANCE = "stripe:balance"
REVENUE_COMMISSION = "revenue:commission"
EXPENSE_PSP_FEES = "expense:psp-fees"

_FIXED: dict[str, tuple[AccountType, AccountKind]] = {
    BANK_ESCROW: (AccountType.BANK_ESCROW, AccountKind.ASSET),
    BANK_CASH: (AccountType.BANK_CASH, AccountKind.ASSET),
    STRIPE_BALANCE: (AccountType.STRIPE_BALANCE, AccountKind.ASSET),
    REVENUE_COMMISSION: (AccountType.REVENUE_COMMISSION, AccountKind.REVENUE),
    EXPENSE_PSP_FEES: (AccountType.EXPENSE_PSP_FEES, AccountKind.EXPENSE),
}

FIXED_ACCOUNTS: tuple[str, ...] = tuple(_FIXED)


def _card_no(card_no: str) -> str:
    if not isinstance(card_no, str) or not CARD_NO_PATTERN.match(card_no):
        raise InvalidAccountName(f"card number must be 16 digits, got {card_no!r}")
    return card_no


def _slug(what: str, value: str) -> str:
    if not isinstance(value, str) or not SLUG_PATTERN.match(value):
        raise InvalidAccountName(
            f"{what} must be 1-64 characters of letters, digits, '.', '_' or '-', got {value!r}"
        )
    return value


def card(card_no: str) -> str:
    """`card:<no>`: the money on one card."""
    return f"card:{_card_no(card_no)}"


def card_pending(card_no: str) -> str:
    """`card-pending:<no>`: paid online, not yet written onto the card."""
    return f"card-pending:{_card_no(card_no)}"


def card_deposit(card_no: str) -> str:
    """`card-deposit:<no>`: the refundable card deposit."""
    return f"card-deposit:{_card_no(card_no)}"


def payable(participant: str) -> str:
    """`payable:<participant>`: owed to a bus operator, clinic or utility."""
    return f"payable:{_slug('participant id', participant)}"


def insurer(scheme: str) -> str:
    """`insurer:<scheme>`: claims on the medical-insurance fund."""
    return f"insurer:{_slug('insurance scheme', scheme)}"


def subsidy(scheme: str) -> str:
    """`subsidy:<scheme>`: claims on the concession fund (seniors, students, disabled)."""
    return f"subsidy:{_slug('subsidy scheme', scheme)}"


def suspense(reason: str) -> str:
    """`suspense:<reason>`: money that arrived and cannot yet be placed."""
    return f"suspense:{_slug('suspense reason', reason)}"


def parse_account(name: str) -> tuple[AccountType, str | None]:
    """Split a chart account name into its type and its key (card no, participant, ...)."""
    if not isinstance(name, str) or len(name) > ACCOUNT_NAME_LENGTH_MAX:
        raise InvalidAccountName(f"not an account name: {name!r}")
    if name in _FIXED:
        return _FIXED[name][0], None
    prefix, sep, key = name.partition(":")
    if not sep or prefix not in _PREFIXED:
        raise InvalidAccountName(f"{name!r} is not in the chart of accounts")
    account_type = _PREFIXED[prefix][0]
    if account_type in (AccountType.CARD, AccountType.CARD_PENDING, AccountType.CARD_DEPOSIT):
        _card_no(key)
    else:
        _slug(prefix, key)
    return account_type, key


def account_spec(name: str) -> AccountSpec:
    """The kind and ledger flags of a chart account, from its name alone."""
    parse_account(name)
    if name in _FIXED:
        account_type, kind = _FIXED[name]
        return AccountSpec(name, account_type, kind, False, False)
    prefix = name.partition(":")[0]
    account_type, kind, no_overdraft = _PREFIXED[prefix]
    return AccountSpec(name, account_type, kind, no_overdraft, False)


def card_no_of(name: str) -> str:
    """The card number in `card:<no>`, `card-pending:<no>` or `card-deposit:<no>`."""
    account_type, key = parse_account(name)
    if account_type not in (AccountType.CARD, AccountType.CARD_PENDING, AccountType.CARD_DEPOSIT):
        raise InvalidAccountName(f"{name!r} is not a card account")
    if key is None:  # unreachable: prefixed names always carry a key
        raise InvalidAccountName(f"{name!r} has no card number")
    return key
