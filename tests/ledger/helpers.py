"""Small builders for the ledger tests: namespaced accounts and transfers on ledger 1 (CNY)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from ledger.ids import account_id, transfer_id
from ledger.tables import to_uuid, transfers
from ledger.types import Account, AccountFlags, LedgerSpec, Transfer, TransferFlags
from ledger.writer import Ledger

T = TypeVar("T")
CNY = 1
USD = 2
LEDGERS = [LedgerSpec(id=CNY, name="CNY in fen"), LedgerSpec(id=USD, name="USD cents", code="USD")]


def acct(
    ns: str, name: str, *, ledger: int = CNY, flags: AccountFlags = AccountFlags.NONE
) -> Account:
    return Account(account_id(f"{ns}:{name}"), ledger, 1, f"{ns}:{name}", flags=flags)


def xfer(
    ns: str,
    key: str,
    debit: Account | int,
    credit: Account | int,
    amount: int,
    *,
    ledger: int = CNY,
    code: int = 1,
    flags: TransferFlags = TransferFlags.NONE,
    **extra: int,
) -> Transfer:
    return Transfer(
        id=transfer_id(f"{ns}:{key}"),
        debit_account_id=debit if isinstance(debit, int) else debit.id,
        credit_account_id=credit if isinstance(credit, int) else credit.id,
        amount=amount,
        ledger=ledger,
        code=code,
        flags=flags,
        **extra,
    )


async def setup_books(ledger: Ledger, ns: str) -> dict[str, Account]:
    """bank (asset), card and card2 (may not go below zero), merchant, and a USD account."""
    await ledger.create_ledgers(LEDGERS)
    books = {
        "bank": acct(ns, "bank"),
        "card": acct(ns, "card", flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
        "card2": acct(ns, "card2", flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
        "merchant": acct(ns, "merchant"),
        "limit": acct(ns, "limit", flags=AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS),
        "usd": acct(ns, "usd", ledger=USD),
    }
    results = await ledger.create_accounts(list(books.values()))
    assert all(r.value in ("ok", "exists") for r in results), results
    return books


async def balances(ledger: Ledger, account: Account) -> tuple[int, int, int, int]:
    [state] = await ledger.reader.lookup_accounts([account.id])
    b = state.balance
    return (b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted)


async def books_with_history(
    url: str, ns: str, clock_ns: Callable[[], int] = time.time_ns
) -> dict[str, Account]:
    """setup_books, then a load bank -> card of 1,000 and a tap card -> merchant of 300 (posted
    at the ledger times `clock_ns` gives, or later if the ledger has posted later already)."""
    async with await Ledger.open(url, clock_ns=clock_ns) as led:
        books = await setup_books(led, ns)
        await led.create_transfers(
            [
                xfer(ns, "load", books["bank"], books["card"], 1_000),
                xfer(ns, "tap", books["card"], books["merchant"], 300),
            ]
        )
    return books


async def on_connection(
    url: str, work: Callable[[AsyncConnection], Awaitable[T]], *, begin: bool = False
) -> T:
    """`work` on a connection of its own to `url` (`begin`: in a transaction committed after)."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() if begin else engine.connect() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


async def last_timestamp(url: str) -> int:
    """The ledger time of the last transfer stored (0 if none)."""

    async def read(conn: AsyncConnection) -> int:
        return int((await conn.execute(select(func.max(transfers.c.timestamp)))).scalar() or 0)

    return await on_connection(url, read)


async def write_behind(url: str, ns: str, books: dict[str, Account], at: int) -> int:
    """A transfer card -> merchant of 50 written straight into the table at ledger time `at`
    (books_with_history's books), recording both accounts' balances as they were before it
    (those the tap recorded, unchanged): its id. The ledger's clock does not move."""
    tap = xfer(ns, "tap", books["card"], books["merchant"], 300).id
    rogue = xfer(ns, "rogue", books["card"], books["merchant"], 50).id

    async def write(conn: AsyncConnection) -> None:
        found = await conn.execute(select(transfers).where(transfers.c.id == to_uuid(tap)))
        row = dict(found.mappings().one())
        row.update(id=to_uuid(rogue), amount=50, timestamp=at)
        await conn.execute(insert(transfers).values(**row))

    await on_connection(url, write, begin=True)
    return rogue
