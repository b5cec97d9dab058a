"""Check 8, the escrow balance: on each statement day, the bank's closing balance of the escrow
account (CLBD of the camt.053 imported with `onecard bank import`) against the ledger's
`bank:escrow` at the end of that day (midnight in the business time zone). Reads only.

The two differ by what is in transit, and only by that when the books are right: a settled
day's payouts the ledger books at settlement and the bank executes the next day (the pain.001's
execution date), and a fund's payment the bank credited on the day whose ledger transfer is
booked when its statement is imported (after the day). Both are added back from the data (the
payout's transfer and its execution date, the receipt's transfer and value date); any other
difference is a `bank_balance_mismatch` break, with both balances in fen. A statement without a
closing balance, or without a booked entry to date it, is not compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

from clearing.books.chart import BANK_ESCROW
from clearing.settlement.references import payout_transfer_key
from ledger.ids import account_id, transfer_id
from reconciliation.bank import repository
from reconciliation.bank.matching import ExpectedPayout
from reconciliation.checks.base import BreakKind, CheckContext, CheckResult, Finding, Scope

NS_PER_S = 1_000_000_000
TRANSFERS_PER_LOOKUP = 1000
# A fund's payment is booked when its statement is imported: within this many days of its value
# date (older and newer receipts cannot be in transit on a statement day).
RECEIPT_BOOKED_WITHIN_DAYS = 31


def _end_ns(ctx: CheckContext, day: date) -> int:
    """The end of a calendar day in the business time zone, in ledger nanoseconds."""
    midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=ctx.calendar.time_zone)
    return int(midnight.timestamp()) * NS_PER_S


def _payout_transfer(payout: ExpectedPayout) -> int:
    _, day, code = payout.key.split(":", 2)  # "settlement:<business day>:<participant>"
    return transfer_id(payout_transfer_key(date.fromisoformat(day), code))


async def _posted_at(ctx: CheckContext, ids: Sequence[int]) -> dict[int, int]:
    """Transfer id -> ledger timestamp, for those of `ids` the ledger holds."""
    found: dict[int, int] = {}
    unique = sorted(set(ids))
    for start in range(0, len(unique), TRANSFERS_PER_LOOKUP):
        chunk = unique[start : start + TRANSFERS_PER_LOOKUP]
        for transfer in await ctx.reader.lookup_transfers(chunk, conn=ctx.conn):
            found[transfer.id] = transfer.timestamp
    return found


class EscrowBalanceCheck:
    name = "escrow_balance"
    kinds = (BreakKind.BANK_BALANCE_MISMATCH,)

    async def run(self, ctx: CheckContext) -> CheckResult:
        result = CheckResult()
        balances = await repository.closing_balances(ctx.conn, ctx.business_day)
        if not balances:
            return result
        first, last = min(b.day for b in balances), max(b.day for b in balances)
        margin = timedelta(days=RECEIPT_BOOKED_WITHIN_DAYS)
        receipts = await repository.fund_receipts_between(ctx.conn, first - margin, last + margin)
        payouts = [
            p
            for p in await repository.settlement_payouts(
                ctx.conn, first + timedelta(days=1), last + timedelta(days=2)
            )
            if p.key.startswith("settlement:")
        ]
        posted = await _posted_at(
            ctx, [tid for _, _, tid in receipts] + [_payout_transfer(p) for p in payouts]
        )
        escrow = account_id(BANK_ESCROW)
        never = 1 << 63  # a transfer not (yet) in the ledger: after every day's end
        for closing in balances:
            end = _end_ns(ctx, closing.day)
            state = await ctx.reader.get_balance_as_of(escrow, end, conn=ctx.conn)
            ledger_fen = 0 if state is None else state.debits_posted - state.credits_posted
            payouts_fen = sum(
                -p.signed_fen
                for p in payouts
                if p.expected_date > closing.day and posted.get(_payout_transfer(p), never) <= end
            )
            receipts_fen = sum(
                fen
                for on, fen, tid in receipts
                if on <= closing.day and posted.get(tid, never) > end
            ) - sum(
                fen
                for on, fen, tid in receipts
                if on > closing.day and posted.get(tid, never) <= end
            )
            expected_fen = ledger_fen + payouts_fen + receipts_fen
            result.total += 1
            if expected_fen == closing.closing_fen:
                result.matched += 1
                continue
            result.add(
                Finding(
                    BreakKind.BANK_BALANCE_MISMATCH,
                    f"balance:{closing.account}:{closing.day.isoformat()}",
                    abs(closing.closing_fen - expected_fen),
                    BANK_ESCROW,
                    {
                        "statement_id": closing.statement_id,
                        "day": closing.day.isoformat(),
                        "bank_closing_fen": closing.closing_fen,
                        "ledger_fen": ledger_fen,
                        "payouts_in_transit_fen": payouts_fen,
                        "fund_receipts_in_transit_fen": receipts_fen,
                        "why": f"the bank's closing balance of {closing.day} is "
                        f"{closing.closing_fen} fen, the ledger's bank:escrow then "
                        f"{ledger_fen} fen ({expected_fen} fen with what is in transit)",
                    },
                    Scope.STANDING,
                )
            )
        return result
