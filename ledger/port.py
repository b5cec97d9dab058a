"""The ledger as its callers see it: one Protocol, `LedgerPort`, for every caller above the ledger.

`ledger.writer.Ledger` is the implementation (tests/ledger/test_types.py checks it conforms);
a caller that only needs to move and read money types its parameter with `LedgerPort`, so a
test can hand it a fake and the ledger stays typed one way. `conn` joins the caller's open
transaction (an `AsyncConnection` of the same database); `transaction()` opens a writing one.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.types import (
    Account,
    AccountState,
    CreateAccountResult,
    CreateLedgerResult,
    CreateTransferResult,
    LedgerSpec,
    Transfer,
)

__all__ = ["LedgerPort"]


@runtime_checkable
class LedgerPort(Protocol):
    """Create ledgers, accounts and transfers; look accounts up; group calls in a transaction."""

    async def create_ledgers(
        self, specs: Sequence[LedgerSpec], *, conn: AsyncConnection | None = None
    ) -> list[CreateLedgerResult]: ...

    async def create_accounts(
        self, batch: Sequence[Account], *, conn: AsyncConnection | None = None
    ) -> list[CreateAccountResult]: ...

    async def create_transfers(
        self, batch: Sequence[Transfer], *, conn: AsyncConnection | None = None
    ) -> list[CreateTransferResult]: ...

    async def lookup_accounts(
        self, ids: Sequence[int], *, conn: AsyncConnection | None = None
    ) -> list[AccountState]: ...

    async def credits_available(
        self, ids: Sequence[int], *, conn: AsyncConnection | None = None
    ) -> list[int | None]: ...

    def transaction(self) -> AbstractAsyncContextManager[AsyncConnection]: ...
