"""Open the books in the ledger: the CNY ledger and the chart's accounts, idempotently.

Takes a ledger (`ledger.writer.Ledger` or anything with the same methods) and an optional
caller-owned connection; never commits it. Creating an account that exists is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from clearing.books.chart import FIXED_ACCOUNTS, AccountSpec, BooksError, account_spec
from clearing.books.codes import LEDGER_CNY
from ledger import (
    Account,
    AccountFlags,
    CreateAccountResult,
    CreateLedgerResult,
    LedgerSpec,
    account_id,
)
from ledger.port import LedgerPort
from ledger.types import BATCH_MAX

LEDGER_CNY_SPEC = LedgerSpec(id=LEDGER_CNY, name="onecard CNY", code="CNY", scale=2)

_ACCOUNT_OK = frozenset({CreateAccountResult.OK, CreateAccountResult.EXISTS})
_LEDGER_OK = frozenset({CreateLedgerResult.OK, CreateLedgerResult.EXISTS})


class AccountsNotOpened(BooksError):
    """The ledger refused to open an account of the chart (e.g. the same id, other flags)."""

    code = "accounts_not_opened"


def ledger_account(spec: AccountSpec) -> Account:
    """The ledger `Account` for a chart account: id from its name, code from its type."""
    flags = AccountFlags.NONE
    if spec.debits_must_not_exceed_credits:
        flags |= AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    if spec.credits_must_not_exceed_debits:
        flags |= AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
    return Account(
        id=account_id(spec.name),
        ledger=LEDGER_CNY,
        code=spec.code,
        name=spec.name,
        flags=flags,
    )


def account_of(name: str) -> Account:
    """The ledger account of a chart account name (validates the name)."""
    return ledger_account(account_spec(name))


def _result_code(result: Any) -> Any:
    """Results may be bare enums or (index, code)-like objects; take the code."""
    return getattr(result, "result", result)


async def ensure_ledger(ledger: LedgerPort, *, conn: Any = None) -> None:
    """Create the CNY ledger if it does not exist yet."""
    results = await ledger.create_ledgers([LEDGER_CNY_SPEC], conn=conn)
    code = _result_code(results[0])
    if code not in _LEDGER_OK:
        raise AccountsNotOpened(f"the CNY ledger could not be opened: {code}")


async def ensure_accounts(
    ledger: LedgerPort, names: Iterable[str], *, conn: Any = None
) -> dict[str, int]:
    """Open every named chart account that does not exist yet; return name -> account id.

    Names are validated against the chart first (a typo raises before anything is written).
    Batches of at most the ledger's BATCH_MAX.
    """
    unique = list(dict.fromkeys(names))
    accounts = [account_of(name) for name in unique]
    for start in range(0, len(accounts), BATCH_MAX):
        chunk = accounts[start : start + BATCH_MAX]
        results = await ledger.create_accounts(chunk, conn=conn)
        if len(results) != len(chunk):
            raise AccountsNotOpened(
                f"ledger answered {len(results)} results for {len(chunk)} accounts"
            )
        refused = [
            (account.name, _result_code(result))
            for account, result in zip(chunk, results, strict=True)
            if _result_code(result) not in _ACCOUNT_OK
        ]
        if refused:
            shown = ", ".join(f"{name}: {code}" for name, code in refused[:5])
            raise AccountsNotOpened(f"{len(refused)} accounts not opened ({shown})")
    return {account.name: account.id for account in accounts}


async def open_books(ledger: LedgerPort, *, conn: Any = None) -> dict[str, int]:
    """The CNY ledger and the fixed accounts (bank, Stripe, revenue, expense)."""
    await ensure_ledger(ledger, conn=conn)
    return await ensure_accounts(ledger, FIXED_ACCOUNTS, conn=conn)
