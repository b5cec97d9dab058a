"""The statement a bank would send for a settled day, as demo and test data: one batch entry
paying every payout of the day's pain.001 (a transaction detail per payout, with its end-to-end
id), and one credit per fund paying its claim of the day. Pure; the real statement comes from
the bank, and `onecard bank import` reads either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from reconciliation.bank.matching import ExpectedPayout
from reconciliation.bank.statement import BankEntry, BankStatement, Direction, EntryDetail


@dataclass(frozen=True, slots=True)
class FundPaying:
    """A fund paying its claim: from its bank account, named as the registry names it."""

    name: str
    bank_account: str
    amount_fen: int
    claim_day: date


def sample_statement(
    escrow_account: str,
    paid_on: date,
    payouts: Sequence[ExpectedPayout],
    funds: Sequence[FundPaying],
) -> BankStatement:
    stamp = f"{paid_on:%Y%m%d}"
    entries: list[BankEntry] = []
    outgoing = sorted((p for p in payouts if p.signed_fen < 0), key=lambda p: p.key)
    if outgoing:
        batch_ref = min(
            (r for p in outgoing for r in p.batch_refs if r.endswith("-1")), default=None
        )
        details = tuple(
            EntryDetail(-p.signed_fen, p.end_to_end_id, None, batch_ref, None, p.counterpart, None)
            for p in outgoing
        )
        entries.append(
            BankEntry(
                len(entries) + 1,
                f"SAMPLE-{stamp}-PAYOUTS",
                sum(-p.signed_fen for p in outgoing),
                Direction.DEBIT,
                paid_on,
                paid_on,
                False,
                batch_ref,
                "onecard settlement payouts",
                details,
            )
        )
    for n, fund in enumerate(funds, start=1):
        detail = EntryDetail(
            None, None, None, None, f"claims {fund.claim_day.isoformat()}", fund.name,
            fund.bank_account,
        )  # fmt: skip
        entries.append(
            BankEntry(
                len(entries) + 1,
                f"SAMPLE-{stamp}-FUND-{n}",
                fund.amount_fen,
                Direction.CREDIT,
                paid_on,
                paid_on,
                False,
                None,
                None,
                (detail,),
            )
        )
    return BankStatement(
        message_id=f"SAMPLE-{stamp}",
        statement_id=f"SAMPLE-{stamp}",
        account=escrow_account,
        currency="CNY",
        created_at=datetime.combine(paid_on, time(18), tzinfo=UTC),
        opening_fen=None,
        closing_fen=None,
        entries=tuple(entries),
        refused=(),
        not_booked=0,
    )
