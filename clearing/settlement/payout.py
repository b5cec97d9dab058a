"""The payout of a business day, pure: each participant's line (gross, commission, net), the
ledger transfers that pay it, and the run's totals. Integer fen, frozen values, no I/O.

What the day earned comes in (the repository sums it); nothing here reads or writes anything.
The commission rule and its rounding are clearing.settlement.fees'.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from clearing.books.codes import LEDGER_CNY, TransferCode
from clearing.settlement.fees import day_totals
from clearing.settlement.files import PayoutLine
from clearing.settlement.references import payout_transfer_key
from ledger import Transfer, transfer_id


@dataclass(frozen=True, slots=True)
class Earnings:
    """What one participant's cleared records of a day earned (loads earn nothing)."""

    taps: int
    fares_fen: int
    subsidy_fen: int
    insured_fen: int


@dataclass(frozen=True, slots=True)
class Payee:
    """A participant as the registry knows it: where it is paid and what it pays in commission."""

    name: str
    bank_name: str
    bank_account: str
    commission_bp: int


@dataclass(frozen=True, slots=True)
class Claim:
    account: str
    kind: str  # insurer | subsidy
    scheme: str
    items: int
    amount_fen: int


@dataclass(frozen=True, slots=True)
class Settlement:
    business_day: date
    created_at: datetime
    message_id: str
    lines: tuple[PayoutLine, ...]
    claims: tuple[Claim, ...]
    already_settled: bool

    @property
    def gross_fen(self) -> int:
        return sum(line.gross_fen for line in self.lines)

    @property
    def commission_fen(self) -> int:
        return sum(line.commission_fen for line in self.lines)

    @property
    def net_fen(self) -> int:
        return sum(line.net_fen for line in self.lines)

    @property
    def taps(self) -> int:
        return sum(line.taps for line in self.lines)


@dataclass(frozen=True, slots=True)
class TransferIds:
    """The ledger transfers of one participant's line (None: the amount was zero, no transfer)."""

    commission: int | None
    payout: int | None


@dataclass(frozen=True, slots=True)
class PayoutAccounts:
    """Ledger account ids the day's transfers move between."""

    payable: Mapping[str, int]  # participant code -> its payable account
    commission: int  # revenue:commission
    escrow: int  # bank:escrow, what the bank file pays out of


@dataclass(frozen=True, slots=True)
class RunTotals:
    participants: int
    taps: int
    gross_fen: int
    commission_fen: int
    net_fen: int


def missing_payees(earnings: Mapping[str, Earnings], payees: Mapping[str, Payee]) -> list[str]:
    """Participants that earned money but are not in the registry (sorted)."""
    return sorted(set(earnings) - set(payees))


def payout_lines(
    earnings: Mapping[str, Earnings], payees: Mapping[str, Payee]
) -> tuple[PayoutLine, ...]:
    """One line per participant that earned something, by participant code: gross = fares +
    subsidy + insured, commission on the gross (fees.commission_fen), net = gross - commission."""
    lines = []
    for code, earned in sorted(earnings.items()):
        payee = payees[code]
        totals = day_totals(
            code,
            taps=earned.taps,
            fares_fen=earned.fares_fen,
            subsidy_fen=earned.subsidy_fen,
            insured_fen=earned.insured_fen,
            commission_bp=payee.commission_bp,
        )
        lines.append(
            PayoutLine(
                participant_code=code,
                participant_name=payee.name,
                bank_name=payee.bank_name,
                bank_account=payee.bank_account,
                taps=totals.taps,
                fares_fen=totals.fares_fen,
                subsidy_fen=totals.subsidy_fen,
                insured_fen=totals.insured_fen,
                commission_bp=totals.commission_bp,
                commission_fen=totals.commission_fen,
                net_fen=totals.net_fen,
            )
        )
    return tuple(lines)


def payout_transfers(
    business_day: date, lines: Iterable[PayoutLine], accounts: PayoutAccounts
) -> tuple[tuple[Transfer, ...], dict[str, TransferIds]]:
    """Per line: the commission (payable -> revenue) and the payout (payable -> escrow), each
    only when not zero; ids derive from the day and participant, so a retry posts nothing twice."""
    transfers: list[Transfer] = []
    ids: dict[str, TransferIds] = {}
    for line in lines:
        code = line.participant_code
        commission_id = payout_id = None
        if line.commission_fen:
            commission_id = transfer_id(f"settle:{business_day}:{code}:commission")
            transfers.append(
                Transfer(
                    id=commission_id,
                    debit_account_id=accounts.payable[code],
                    credit_account_id=accounts.commission,
                    amount=line.commission_fen,
                    ledger=LEDGER_CNY,
                    code=TransferCode.COMMISSION,
                )
            )
        if line.net_fen:
            payout_id = transfer_id(payout_transfer_key(business_day, code))
            transfers.append(
                Transfer(
                    id=payout_id,
                    debit_account_id=accounts.payable[code],
                    credit_account_id=accounts.escrow,
                    amount=line.net_fen,
                    ledger=LEDGER_CNY,
                    code=TransferCode.SETTLEMENT_PAYOUT,
                )
            )
        ids[code] = TransferIds(commission_id, payout_id)
    return tuple(transfers), ids


def run_totals(lines: Iterable[PayoutLine]) -> RunTotals:
    """The run row's sums over its lines."""
    lines = tuple(lines)
    return RunTotals(
        participants=len(lines),
        taps=sum(line.taps for line in lines),
        gross_fen=sum(line.gross_fen for line in lines),
        commission_fen=sum(line.commission_fen for line in lines),
        net_fen=sum(line.net_fen for line in lines),
    )
