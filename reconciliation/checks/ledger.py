"""Check 1, the ledger: every ledger's debits equal its credits, every account's balance equals
the sum of its transfers, and the float holds.

The sum is checked without reading the history (which grows by millions of transfers a day):
every transfer row records both its accounts' balances right after it, so a night checks, for
each account the entries of its window touched, (1) that its stored balances are those recorded
on its last entry, and (2) that its balances recorded before the window plus what its entries in
the window moved are those its last entry in it records (summed in one pass; only for an account
where they are not are its entries sorted, to name the first that does not follow from the one
before). The window is the run's (`CheckContext.ledger_window`): it starts where the last
reconciled day's ended and ends at what the ledger had committed when the run began, so the
nights chain to the sum over everything, whenever each ran; the first run of all reads the whole
history. The accounts of open standing mismatches are looked at again every run; every account
is on the sweep's night (`CheckContext.sweep_accounts`, weekly). Any other night an account no
entry touched is not read: a balance changed behind the ledger's back there is found by the next
sweep, by `onecard ledger check` (which sums every transfer), and by the ledger's totals if it
unbalances them.

The float (DESIGN.md's chart): residents' money is what the card company owes card holders,
  card:* + card-pending:* + card-deposit:*   (on the cards, paid online not yet loaded, deposits)
and it must equal what the escrow side holds for them,
  bank:escrow + bank:cash + stripe:balance + insurer:* + subsidy:*
  - payable:* - suspense:* - revenue:commission + expense:psp-fees
i.e. the money held (in the escrow account, at the counters, at Stripe, and claims on the funds
that will pay into escrow) less what of it belongs to others (operators not yet paid, money not
yet placed, the company's own commission; Stripe's fees were taken out of it). Balanced books
with every account in the chart make both sides equal; an account outside the chart or a ledger
that does not balance shows as a difference. Reads through ledger.reader only; moves nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from clearing.books.chart import AccountType
from clearing.books.codes import LEDGER_CNY
from ledger.reader import (
    BalanceMismatch,
    CodeTotals,
    EntryBreak,
    WindowBreak,
    account_names,
    entries_in,
    entry_breaks,
    stale_balances,
    stale_balances_all,
    totals_by_code,
    window_breaks,
)
from ledger.types import PAGE_MAX
from reconciliation import repository
from reconciliation.checks.base import BreakKind, CheckContext, CheckResult, Finding, Scope

RESIDENTS = (AccountType.CARD, AccountType.CARD_PENDING, AccountType.CARD_DEPOSIT)
HELD = (
    AccountType.BANK_ESCROW,
    AccountType.BANK_CASH,
    AccountType.STRIPE_BALANCE,
    AccountType.INSURER,
    AccountType.SUBSIDY,
)
OWED_TO_OTHERS = (AccountType.PAYABLE, AccountType.SUSPENSE, AccountType.REVENUE_COMMISSION)
TAKEN_OUT = (AccountType.EXPENSE_PSP_FEES,)
_DEBIT_NORMAL = {*HELD, *TAKEN_OUT}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Accounts whose day does not add up whose entries are each looked at (a sort of their entries).
ACCOUNTS_NAMED_MAX = 200
_ORDER = "debits_pending, debits_posted, credits_pending, credits_posted"


def _off_by(expected: Iterable[int], recorded: Iterable[int]) -> int:
    return max(abs(a - b) for a, b in zip(expected, recorded, strict=True))


def _day_break(
    key: str,
    names: Mapping[int, str],
    account_id: int,
    expected: tuple[int, int, int, int],
    recorded: tuple[int, int, int, int],
    details: dict[str, object],
) -> Finding:
    """A balance_mismatch of the day: an account's entries do not follow from its balances."""
    name = names.get(account_id, f"{account_id:032x}")
    return Finding(
        BreakKind.BALANCE_MISMATCH,
        f"{key}:{name}"[:200],
        _off_by(expected, recorded),
        name[:100],
        {**details, "recorded": list(recorded), "order": _ORDER},
    )


def ledger_time(ns: int) -> str:
    """A ledger timestamp (ns since the epoch) as a UTC time to the second (ledger_ns's inverse,
    to the second)."""
    return (_EPOCH + timedelta(microseconds=ns // 1_000)).strftime("%Y-%m-%d %H:%M:%S")


def ledger_ns(at: datetime) -> int:
    """A time as the ledger's timestamps count it (nanoseconds since the epoch), exactly."""
    return (at - _EPOCH) // timedelta(microseconds=1) * 1_000


def normal_balances(totals: Iterable[CodeTotals], ledger: int) -> dict[int, int]:
    """Posted balance per account code on its normal side (assets, expenses: debit)."""
    out: dict[int, int] = {}
    for t in totals:
        if t.ledger != ledger:
            continue
        debit = t.debits_posted - t.credits_posted
        out[t.code] = debit if t.code in _DEBIT_NORMAL else -debit
    return out


def float_sides(balances: Mapping[int, int]) -> tuple[int, int]:
    """(residents' money, what the escrow side holds for it), in fen."""
    residents = sum(balances.get(int(c), 0) for c in RESIDENTS)
    held = (
        sum(balances.get(int(c), 0) for c in HELD)
        - sum(balances.get(int(c), 0) for c in OWED_TO_OTHERS)
        + sum(balances.get(int(c), 0) for c in TAKEN_OUT)
    )
    return residents, held


class LedgerCheck:
    name = "ledger"
    kinds = (BreakKind.LEDGER_UNBALANCED, BreakKind.BALANCE_MISMATCH, BreakKind.FLOAT_MISMATCH)

    async def run(self, ctx: CheckContext) -> CheckResult:
        result = CheckResult()
        totals = await totals_by_code(ctx.conn)
        by_ledger: dict[int, list[int]] = {}
        for t in totals:
            sums = by_ledger.setdefault(t.ledger, [0, 0, 0, 0])
            for i, v in enumerate(
                (t.debits_posted, t.credits_posted, t.debits_pending, t.credits_pending)
            ):
                sums[i] += v
            result.total += t.accounts
        for ledger, (dpo, cpo, dp, cp) in sorted(by_ledger.items()):
            result.total += 1
            if dpo == cpo and dp == cp:
                result.matched += 1
                continue
            result.add(
                Finding(
                    BreakKind.LEDGER_UNBALANCED,
                    f"ledger:{ledger}",
                    abs(dpo - cpo) or abs(dp - cp),
                    f"ledger {ledger}",
                    {
                        "debits_posted": dpo,
                        "credits_posted": cpo,
                        "debits_pending": dp,
                        "credits_pending": cp,
                    },
                    Scope.STANDING,
                )
            )
        mismatched = await self._check_entries(ctx, result)
        result.matched += sum(t.accounts for t in totals) - mismatched
        self._check_float(result, totals)
        return result

    async def _check_entries(self, ctx: CheckContext, result: CheckResult) -> int:
        """The accounts the window's entries touched: each holds what its last entry records, and
        its balances before the window plus what its entries moved are what its last entry in
        it records; where not, the entries that do not follow from the one before are named.
        The accounts of open standing mismatches are looked at again, touched or not; with
        `ctx.sweep_accounts`, every account is.
        Returns how many accounts do not hold what their last entry records."""
        since, until = ctx.ledger_window or (ledger_ns(ctx.day_start), ledger_ns(ctx.day_end))
        entries = await entries_in(ctx.conn, since, until)
        off: list[WindowBreak] = []
        mismatched = 0
        stale: list[BalanceMismatch] = []
        touched: set[int] = set()
        async for found in window_breaks(ctx.conn, since, until, touched):
            if isinstance(found, WindowBreak):
                off.append(found)
            else:
                stale.append(found)
        if ctx.sweep_accounts:  # the weekly sweep: every account the window did not judge
            stale += [m async for m in stale_balances_all(ctx.conn, touched)]
        else:
            # An account off its last entry stays a standing break until it holds what that
            # entry records; one the window did not judge is looked at again here (the run
            # closes a break its check does not find).
            seen = {m.name[:200] for m in stale}
            again = [
                k
                for k in await repository.open_standing_keys(
                    ctx.conn, BreakKind.BALANCE_MISMATCH.value
                )
                if k not in seen
            ]
            for start in range(0, len(again), PAGE_MAX):
                states = await ctx.reader.lookup_accounts_by_name(
                    again[start : start + PAGE_MAX], conn=ctx.conn
                )
                stale += await stale_balances(
                    ctx.conn, [s.id for s in states if s.id not in touched]
                )
        for found in stale:
            mismatched += 1
            result.add(
                Finding(
                    BreakKind.BALANCE_MISMATCH,
                    found.name[:200],
                    _off_by(found.stored, found.summed),
                    found.name[:100],
                    {
                        "stored": list(found.stored),
                        "on_last_entry": list(found.summed),
                        "order": _ORDER,
                    },
                    Scope.STANDING,
                )
            )
        named = {w.account_id for w in off[:ACCOUNTS_NAMED_MAX]}
        broken: list[EntryBreak] = (
            [e async for e in entry_breaks(ctx.conn, since, until, sorted(named))] if named else []
        )
        # An account is named by the entries that break its chain; past ACCOUNTS_NAMED_MAX (and
        # any whose entries all link, which adding up should not allow) by its day as a whole.
        linked = {e.account_id for e in broken}
        unnamed = [w for w in off if w.account_id not in linked]
        result.total += entries
        result.matched += max(0, entries - len(broken) - len(unnamed))
        names = await account_names(ctx.conn, linked | {w.account_id for w in unnamed})
        for e in broken:
            details = {
                "transfer_id": f"{e.transfer_id:032x}",
                "ledger_timestamp": e.timestamp,
                "before": list(e.before),
                "entry": list(e.delta),
            }
            key = f"entry:{e.transfer_id:032x}"
            result.add(_day_break(key, names, e.account_id, e.expected, e.recorded, details))
        for w in unnamed:
            details = {"before": list(w.before), "moved": list(w.moved)}
            result.add(_day_break("day", names, w.account_id, w.expected, w.recorded, details))
        return mismatched

    def _check_float(self, result: CheckResult, totals: list[CodeTotals]) -> None:
        if not totals:
            return
        residents, held = float_sides(normal_balances(totals, LEDGER_CNY))
        result.total += 1
        if residents == held:
            result.matched += 1
            return
        result.add(
            Finding(
                BreakKind.FLOAT_MISMATCH,
                f"float:{LEDGER_CNY}",
                abs(residents - held),
                "bank:escrow",
                {"residents_fen": residents, "held_fen": held},
                Scope.STANDING,
            )
        )
