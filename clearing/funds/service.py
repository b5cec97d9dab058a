"""Book the funds' payments into the ledger: bank:escrow <- insurer:<scheme> | subsidy:<scheme>.

The one place money from the funds is booked (reconciliation reads it, never books it). Takes
the caller's connection and never commits; every transfer's id comes from the bank reference, so
booking the same statement line again returns the original transfer and moves nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy.ext.asyncio import AsyncConnection

from clearing import books
from clearing.errors import Conflict, InvalidRequest
from clearing.funds import repository
from clearing.funds.receipts import (
    BANK_REF_LENGTH_MAX,
    FundPayer,
    Receipt,
    fund_of,
    receipt_transfer,
)
from ledger import CreateTransferResult
from ledger.port import LedgerPort

__all__ = [
    "BookedPayment",
    "FundPayer",
    "FundPaymentConflict",
    "FundPaymentInvalid",
    "Receipt",
    "book_fund_payment",
    "book_receipts",
]


class FundPaymentInvalid(InvalidRequest):
    code = "fund_payment_invalid"


class FundPaymentConflict(Conflict):
    """The bank reference was booked before with another fund or amount."""

    code = "fund_payment_conflict"


@dataclass(frozen=True, slots=True)
class BookedPayment:
    payer: FundPayer
    bank_ref: str
    amount_fen: int
    value_date: date
    transfer_id: int
    new: bool  # False: the same bank reference was booked before (nothing moved now)


async def book_fund_payment(
    conn: AsyncConnection,
    ledger: LedgerPort,
    payer: FundPayer,
    amount_fen: int,
    bank_ref: str,
    value_date: date,
) -> BookedPayment:
    """Book one payment of `payer` received on `value_date` under the bank's `bank_ref`."""
    if amount_fen <= 0:
        raise FundPaymentInvalid(f"a fund payment is a positive amount, got {amount_fen} fen")
    if not 0 < len(bank_ref) <= BANK_REF_LENGTH_MAX:
        raise FundPaymentInvalid(f"a bank reference is 1 … {BANK_REF_LENGTH_MAX} characters")
    await books.ensure_ledger(ledger, conn=conn)  # a fund may pay before anything else moved
    await books.ensure_accounts(ledger, [books.BANK_ESCROW, payer.claims_account], conn=conn)
    transfer = receipt_transfer(payer, amount_fen, bank_ref)
    [result] = await ledger.create_transfers([transfer], conn=conn)
    if result not in (CreateTransferResult.OK, CreateTransferResult.EXISTS):
        raise FundPaymentConflict(
            f"bank reference {bank_ref} was booked before otherwise ({result}): "
            "check the statement line against the ledger; nothing was booked"
        )
    return BookedPayment(
        payer, bank_ref, amount_fen, value_date, transfer.id, result is CreateTransferResult.OK
    )


async def book_receipts(
    conn: AsyncConnection, ledger: LedgerPort, receipts: Sequence[Receipt]
) -> list[BookedPayment]:
    """Book every receipt that comes from a fund (the registry's insurer and subsidy fund
    accounts); the others are left alone. One result per fund receipt, in order."""
    payers = await repository.fund_payers(conn)
    booked = []
    for receipt in receipts:
        payer = fund_of(receipt, payers)
        if payer is None:
            continue
        booked.append(
            await book_fund_payment(
                conn, ledger, payer, receipt.amount_fen, receipt.bank_ref, receipt.value_date
            )
        )
    return booked
