"""The money of a card's life, as ledger transfers (chart of accounts in clearing/books).

Pure builders make the transfers (deterministic ids: a retried request moves nothing twice);
`post` submits them on the caller's connection, inside the caller's transaction, and raises
if the ledger refuses any of them (so the registry change rolls back with them).

Direction is debit → credit, as in clearing/books/codes.py:
- issue:    bank:cash|bank:escrow → card-deposit:<no> (deposit), → card:<no> (first load)
- replace:  card-deposit:<old> → card-deposit:<new> at once; later card:<old> →
            card-pending:<new> (balance), delivered to the new card as an action-list load
- refund:   card:<no> → bank:cash|bank:escrow (balance), card-deposit:<no> → same (deposit)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from clearing.books import chart
from clearing.books.codes import LEDGER_CNY, TransferCode
from clearing.books.service import ensure_accounts, ensure_ledger
from clearing.errors import ClearingError
from ledger import BATCH_MAX, Transfer, TransferFlags, account_id, transfer_id
from ledger.errors import invariant
from ledger.port import LedgerPort


class LedgerRefused(ClearingError):
    code = "ledger_refused"
    status = 409
    title = "The ledger refused the money movement"


def source_account(paid_by: str) -> str:
    return chart.BANK_CASH if paid_by == "cash" else chart.BANK_ESCROW


def _transfer(key: str, debit: str, credit: str, amount_fen: int, code: TransferCode) -> Transfer:
    return Transfer(
        id=transfer_id(key),
        debit_account_id=account_id(debit),
        credit_account_id=account_id(credit),
        amount=amount_fen,
        ledger=LEDGER_CNY,
        code=int(code),
    )


def _linked(transfers: list[Transfer]) -> list[Transfer]:
    """All or nothing: every transfer but the last carries LINKED."""
    last = len(transfers) - 1
    return [
        replace(t, flags=t.flags | TransferFlags.LINKED) if index < last else t
        for index, t in enumerate(transfers)
    ]


def issue_transfers(
    card_no: str, deposit_fen: int, first_load_fen: int, paid_by: str
) -> list[Transfer]:
    source = source_account(paid_by)
    transfers = []
    if deposit_fen > 0:
        transfers.append(
            _transfer(
                f"card-issue:{card_no}:deposit",
                source,
                chart.card_deposit(card_no),
                deposit_fen,
                TransferCode.CARD_DEPOSIT,
            )
        )
    if first_load_fen > 0:
        transfers.append(
            _transfer(
                f"card-issue:{card_no}:first-load",
                source,
                chart.card(card_no),
                first_load_fen,
                TransferCode.CARD_FIRST_LOAD,
            )
        )
    return _linked(transfers)


def deposit_move_transfers(old_card_no: str, new_card_no: str, deposit_fen: int) -> list[Transfer]:
    if deposit_fen <= 0:
        return []
    return [
        _transfer(
            f"card-replace:{old_card_no}:deposit",
            chart.card_deposit(old_card_no),
            chart.card_deposit(new_card_no),
            deposit_fen,
            TransferCode.CARD_BALANCE_MOVE,
        )
    ]


def balance_move_transfers(old_card_no: str, new_card_no: str, amount_fen: int) -> list[Transfer]:
    if amount_fen <= 0:
        return []
    return [
        _transfer(
            f"card-replace:{old_card_no}:balance",
            chart.card(old_card_no),
            chart.card_pending(new_card_no),
            amount_fen,
            TransferCode.CARD_BALANCE_MOVE,
        )
    ]


def refund_transfers(
    card_no: str, balance_fen: int, deposit_fen: int, paid_by: str
) -> list[Transfer]:
    target = source_account(paid_by)
    transfers = []
    if balance_fen > 0:
        transfers.append(
            _transfer(
                f"card-refund:{card_no}:balance",
                chart.card(card_no),
                target,
                balance_fen,
                TransferCode.CARD_REFUND,
            )
        )
    if deposit_fen > 0:
        transfers.append(
            _transfer(
                f"card-refund:{card_no}:deposit",
                chart.card_deposit(card_no),
                target,
                deposit_fen,
                TransferCode.CARD_DEPOSIT_REFUND,
            )
        )
    return _linked(transfers)


def card_accounts(card_no: str) -> list[str]:
    return [chart.card(card_no), chart.card_pending(card_no), chart.card_deposit(card_no)]


async def open_card_accounts(ledger: LedgerPort, card_nos: list[str], *, conn: Any) -> None:
    """The CNY ledger, the fixed accounts and these cards' three accounts each (idempotent)."""
    await ensure_ledger(ledger, conn=conn)
    names = [name for card_no in card_nos for name in card_accounts(card_no)]
    await ensure_accounts(ledger, [*chart.FIXED_ACCOUNTS, *names], conn=conn)


async def post(ledger: LedgerPort, transfers: list[Transfer], *, conn: Any) -> list[int]:
    """Submit `transfers` on `conn`; their ids, or LedgerRefused naming the first refusal."""
    if not transfers:
        return []
    results: list[Any] = []
    for start in range(0, len(transfers), BATCH_MAX):
        chunk = transfers[start : start + BATCH_MAX]
        invariant(
            not chunk[-1].flags & TransferFlags.LINKED, "a linked chain may not span two batches"
        )
        results.extend(await ledger.create_transfers(chunk, conn=conn))
    for transfer, result in zip(transfers, results, strict=True):
        code = getattr(result, "result", result)
        if not getattr(code, "ok", False):
            raise LedgerRefused(f"transfer {transfer.id:x} refused by the ledger: {code}")
    return [transfer.id for transfer in transfers]


async def card_balance_fen(ledger: LedgerPort, card_no: str, *, conn: Any) -> int | None:
    """The posted balance of card:<no> (a liability: credits − debits); None if not opened."""
    states = await ledger.lookup_accounts([account_id(chart.card(card_no))], conn=conn)
    if not states:
        return None
    return states[0].balance.credit_balance
