"""Which credit on the escrow account's statement is a fund's payment, and the ledger transfer
that books it. Pure: no I/O.

A credit is a fund's when its debtor account is the bank account the registry holds for an
insurer or subsidy fund participant (accounts compared without spaces and hyphens); failing an
account, when the debtor name is exactly (ignoring case) the name of one such participant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from clearing import books
from clearing.books.codes import LEDGER_CNY, TransferCode
from clearing.registry.models import ParticipantKind
from clearing.settings import same_bank_account
from ledger import Transfer, transfer_id

BANK_REF_LENGTH_MAX = 64


@dataclass(frozen=True, slots=True)
class FundPayer:
    """An insurer or subsidy fund participant with a scheme: who pays into which claims."""

    code: str
    name: str
    kind: ParticipantKind
    scheme: str
    bank_account: str

    @property
    def claims_account(self) -> str:
        """The chart account of its claims: insurer:<scheme> or subsidy:<scheme>."""
        if self.kind is ParticipantKind.INSURER:
            return books.insurer(self.scheme)
        return books.subsidy(self.scheme)

    @property
    def receipt_code(self) -> TransferCode:
        if self.kind is ParticipantKind.INSURER:
            return TransferCode.INSURER_RECEIPT
        return TransferCode.SUBSIDY_RECEIPT


@dataclass(frozen=True, slots=True)
class Receipt:
    """Money into the escrow account as the bank statement shows it."""

    bank_ref: str  # unique per account: the bank's reference of the entry (or batch detail)
    amount_fen: int
    value_date: date
    payer_account: str | None
    payer_name: str | None


def fund_of(receipt: Receipt, payers: Sequence[FundPayer]) -> FundPayer | None:
    """The fund that paid `receipt`, or None when it is nobody's the registry knows as a fund."""
    if receipt.payer_account:
        for payer in payers:
            if same_bank_account(payer.bank_account, receipt.payer_account):
                return payer
        return None  # an account we know is no fund's: a name alone does not make it one
    if receipt.payer_name:
        named = [p for p in payers if p.name.casefold() == receipt.payer_name.casefold()]
        if len(named) == 1:
            return named[0]
    return None


def receipt_transfer_id(bank_ref: str) -> int:
    """Idempotency key of a fund payment: the bank's reference, so a statement imported twice
    (or a line repeated on the next statement) books the money once."""
    return transfer_id(f"fund-receipt:{bank_ref}")


def receipt_transfer(payer: FundPayer, amount_fen: int, bank_ref: str) -> Transfer:
    """bank:escrow <- insurer|subsidy:<scheme>: the claim is paid, the escrow holds the money."""
    return Transfer(
        id=receipt_transfer_id(bank_ref),
        debit_account_id=books.account_of(books.BANK_ESCROW).id,
        credit_account_id=books.account_of(payer.claims_account).id,
        amount=amount_fen,
        ledger=LEDGER_CNY,
        code=payer.receipt_code,
    )
