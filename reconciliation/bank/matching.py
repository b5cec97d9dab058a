"""Matcher 5: the escrow account's statement lines against the payouts that should appear on it
(settlement payouts out of it; Stripe payouts into it, through the same seam). Pure.

The rules, in order; each takes only what the ones before left open:
1. reference: lines naming a payout's end-to-end id; their amounts add up to the payout (a
   payout paid in several parts, or paid and returned, is summed); a different sum is an
   amount mismatch;
2. batch reference: a line naming an instruction file (its PmtInfId or MsgId) paying all of
   that file's open payouts (batch booking);
3. batch by date: one line paying all the open payouts of one expected date (within the
   tolerance, the nearest date first): a whole instruction file booked as one line;
4. amount and date: one line, one payout of the same signed amount, dates within the tolerance;
5. part of a batch: a line naming a file, then one without reference, paying a subset of the
   file's (of one date's) open payouts (bounded search).
Without references, equal amounts are told apart by date only: such a match may pair a line
with another payout of the same amount, which balances the same and leaves no break. A file
booked partly as one batch line and partly as lines without any reference may, when amounts
repeat within the tolerance, leave the batch line unmatched (a break for a person to look at).
A payout still open more than `tolerance_days` bank days after its expected date is a
`bank_credit_missing` break; a line still open is `bank_line_unexplained`.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from reconciliation.bank.bankdays import add_bank_days, bank_days_between, calendar_days_covering
from reconciliation.bank.findings import BankBreakKind, BankFinding
from reconciliation.bank.statement import BankEntry

SUBSET_CANDIDATES_MAX = 40  # payouts one batch line is searched over (the nearest first)
SUBSET_SEARCH_STEPS_MAX = 50_000  # bound on the subset-sum search of one line
TOLERANCE_DAYS_MAX = 30  # bank days


class PayoutSource(enum.StrEnum):
    SETTLEMENT = "settlement"  # an operator's payout: out of the escrow account
    STRIPE = "stripe"  # a Stripe payout: into it (the Stripe matcher provides them)


class MatchRule(enum.StrEnum):
    REFERENCE = "reference"
    BATCH_REFERENCE = "batch_reference"
    AMOUNT_DATE = "amount_date"
    BATCH_DATE = "batch_date"


@dataclass(frozen=True, slots=True)
class ExpectedPayout:
    """A payout the statement should show, signed from the escrow account's side."""

    key: str  # stable: e.g. "settlement:2026-12-05:bus-1"
    source: PayoutSource
    counterpart: str  # participant code, or "stripe"
    signed_fen: int  # a settlement payout is negative (money out), a Stripe payout positive
    expected_date: date  # requested execution date, Stripe's arrival date
    end_to_end_id: str | None
    batch_refs: frozenset[str] = frozenset()  # the instruction file's MsgId and PmtInfId


@dataclass(frozen=True, slots=True)
class LineItem:
    """What one statement line (an entry, or one detail of a batch entry) says."""

    ref: str  # the entry's bank reference, "/<n>" for the n-th detail of a batch entry
    signed_fen: int
    value_date: date
    end_to_end_id: str | None
    batch_refs: frozenset[str] = frozenset()
    counterparty_account: str | None = None  # who paid (a credit) or was paid (a debit)
    counterparty_name: str | None = None
    remittance: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    rule: MatchRule
    payout_keys: tuple[str, ...]
    line_refs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BankMatch:
    matches: tuple[Match, ...]
    findings: tuple[BankFinding, ...]
    not_due: tuple[str, ...]  # payouts still within their tolerance: no break yet
    payouts: int
    lines: int

    @property
    def matched(self) -> int:
        """Payouts and lines matched automatically."""
        return sum(len(m.payout_keys) + len(m.line_refs) for m in self.matches)

    @property
    def auto_match_rate(self) -> float:
        """Matched payouts and lines out of all of them (1.0 when there was nothing)."""
        total = self.payouts + self.lines
        return self.matched / total if total else 1.0


def line_items(entry: BankEntry) -> tuple[LineItem, ...]:
    """A batch entry whose details carry their own amounts is one item per detail; any other
    entry is one item (with the end-to-end id and party of its single detail, if it has one)."""
    sign = 1 if entry.signed_fen > 0 else -1
    if len(entry.details) > 1 and all(d.amount_fen is not None for d in entry.details):
        return tuple(
            LineItem(
                f"{entry.bank_ref}/{n}",
                sign * (detail.amount_fen or 0),
                entry.value_date,
                detail.end_to_end_id,
                frozenset(r for r in (entry.batch_ref, detail.batch_ref) if r),
                detail.counterparty_account,
                detail.counterparty_name,
                detail.remittance,
            )
            for n, detail in enumerate(entry.details, start=1)
        )
    refs = {entry.batch_ref} | {d.batch_ref for d in entry.details}
    ids = {d.end_to_end_id for d in entry.details if d.end_to_end_id}
    single = entry.details[0] if len(entry.details) == 1 else None
    return (
        LineItem(
            entry.bank_ref,
            entry.signed_fen,
            entry.value_date,
            ids.pop() if len(ids) == 1 else None,
            frozenset(r for r in refs if r),
            single.counterparty_account if single else None,
            single.counterparty_name if single else None,
            single.remittance if single else entry.info,
        ),
    )


@dataclass
class _Open:
    """What is still unmatched while the rules run; open payouts indexed by expected date."""

    payouts: dict[str, ExpectedPayout]
    lines: dict[str, LineItem]
    tolerance_days: int
    matches: list[Match] = field(default_factory=list)
    findings: list[BankFinding] = field(default_factory=list)
    by_date: dict[date, set[str]] = field(default_factory=lambda: defaultdict(set))
    # (expected date, money in?) -> (open payouts, their signed sum): a whole day's file at once
    day_sums: dict[tuple[date, bool], tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for payout in self.payouts.values():
            self.by_date[payout.expected_date].add(payout.key)
            self._count(payout, 1)

    def _count(self, payout: ExpectedPayout, sign: int) -> None:
        group = (payout.expected_date, payout.signed_fen > 0)
        count, total = self.day_sums.get(group, (0, 0))
        self.day_sums[group] = (count + sign, total + sign * payout.signed_fen)

    def take(self, rule: MatchRule, payouts: Iterable[str], lines: Iterable[str]) -> None:
        payout_keys, line_refs = tuple(payouts), tuple(lines)
        for key in payout_keys:
            payout = self.payouts.pop(key)
            self.by_date[payout.expected_date].discard(key)
            self._count(payout, -1)
        for ref in line_refs:
            del self.lines[ref]
        self.matches.append(Match(rule, payout_keys, line_refs))

    def near(self, payout: ExpectedPayout, line: LineItem) -> bool:
        return bank_days_between(payout.expected_date, line.value_date) <= self.tolerance_days

    def near_payouts(self, line: LineItem) -> list[ExpectedPayout]:
        """Open payouts of the line's sign expected within the tolerance of its date."""
        reach = calendar_days_covering(self.tolerance_days)
        found = []
        for offset in range(-reach, reach + 1):
            expected = line.value_date + timedelta(days=offset)
            keys = self.by_date.get(expected)
            if not keys or bank_days_between(expected, line.value_date) > self.tolerance_days:
                continue
            for key in sorted(keys):
                payout = self.payouts[key]
                if _same_sign(payout.signed_fen, line.signed_fen):
                    found.append(payout)
        return found


def match_bank(
    payouts: Sequence[ExpectedPayout],
    lines: Sequence[LineItem],
    *,
    as_of: date,
    tolerance_days: int,
) -> BankMatch:
    """Match `lines` to `payouts` (rules in the module docstring); breaks as of `as_of`."""
    if not 0 <= tolerance_days <= TOLERANCE_DAYS_MAX:
        raise ValueError(f"tolerance_days must be 0 … {TOLERANCE_DAYS_MAX}")
    state = _Open({p.key: p for p in payouts}, {ln.ref: ln for ln in lines}, tolerance_days)
    if len(state.payouts) != len(payouts) or len(state.lines) != len(lines):
        raise ValueError("payout keys and line references must be unique")
    _by_reference(state)
    _by_batch_reference(state, whole_only=True)
    _by_batch_date(state, whole_only=True)
    _by_amount_and_date(state)
    _by_batch_reference(state, whole_only=False)
    _by_batch_date(state, whole_only=False)
    not_due = []
    for payout in sorted(state.payouts.values(), key=lambda p: (p.expected_date, p.key)):
        late = as_of > payout.expected_date
        if late and bank_days_between(payout.expected_date, as_of) > tolerance_days:
            state.findings.append(_missing(payout, tolerance_days))
        else:
            not_due.append(payout.key)
    for line in sorted(state.lines.values(), key=lambda ln: (ln.value_date, ln.ref)):
        state.findings.append(_unexplained(line))
    return BankMatch(
        tuple(state.matches), tuple(state.findings), tuple(not_due), len(payouts), len(lines)
    )


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _missing(payout: ExpectedPayout, tolerance_days: int) -> BankFinding:
    return BankFinding(
        BankBreakKind.BANK_CREDIT_MISSING,
        f"payout:{payout.key}",
        abs(payout.signed_fen),
        payout.counterpart,
        {
            "source": str(payout.source),
            "end_to_end_id": payout.end_to_end_id,
            "expected_date": payout.expected_date.isoformat(),
            "why": f"{payout.source} payout {payout.end_to_end_id or payout.key} of "
            f"{abs(payout.signed_fen)} fen expected on {payout.expected_date} is not on the "
            f"statement {tolerance_days} bank days later",
        },
        _start_of(add_bank_days(payout.expected_date, tolerance_days + 1)),
    )


def _unexplained(line: LineItem) -> BankFinding:
    direction = "credit" if line.signed_fen > 0 else "debit"
    return BankFinding(
        BankBreakKind.BANK_LINE_UNEXPLAINED,
        f"line:{line.ref}",
        abs(line.signed_fen),
        line.ref,
        {
            "direction": direction,
            "value_date": line.value_date.isoformat(),
            "end_to_end_id": line.end_to_end_id,
            "why": f"{direction} of {abs(line.signed_fen)} fen on {line.value_date} (bank "
            f"reference {line.ref}) matches no payout",
        },
        _start_of(line.value_date),
    )


def _by_reference(state: _Open) -> None:
    by_id = {p.end_to_end_id: p for p in state.payouts.values() if p.end_to_end_id}
    named: dict[str, list[LineItem]] = defaultdict(list)
    for line in state.lines.values():
        if line.end_to_end_id in by_id:
            named[line.end_to_end_id].append(line)
    for end_to_end, paying in sorted(named.items()):
        payout = by_id[end_to_end]
        paid_fen = sum(line.signed_fen for line in paying)
        refs = [line.ref for line in paying]
        if paid_fen == payout.signed_fen:
            state.take(MatchRule.REFERENCE, [payout.key], refs)
        elif paid_fen == 0:  # paid and returned: the lines are explained, the payout is not
            state.take(MatchRule.REFERENCE, [], refs)
        else:
            state.take(MatchRule.REFERENCE, [payout.key], refs)
            state.findings.append(
                BankFinding(
                    BankBreakKind.BANK_AMOUNT_MISMATCH,
                    f"payout:{payout.key}",
                    abs(payout.signed_fen - paid_fen),
                    payout.counterpart,
                    {
                        "expected_fen": abs(payout.signed_fen),
                        "paid_fen": abs(paid_fen),
                        "bank_refs": refs,
                        "why": f"payout {end_to_end} of {abs(payout.signed_fen)} fen is on the "
                        f"statement as {abs(paid_fen)} fen",
                    },
                    _start_of(max(line.value_date for line in paying)),
                )
            )


def _by_batch_reference(state: _Open, *, whole_only: bool) -> None:
    by_ref: dict[str, list[str]] = defaultdict(list)
    for payout in state.payouts.values():
        for ref in payout.batch_refs:
            by_ref[ref].append(payout.key)
    for line in sorted(state.lines.values(), key=lambda ln: (ln.value_date, ln.ref)):
        keys = {key for ref in line.batch_refs for key in by_ref.get(ref, ())}
        candidates = [
            state.payouts[key]
            for key in sorted(keys)
            if key in state.payouts and _same_sign(state.payouts[key].signed_fen, line.signed_fen)
        ]
        if whole_only and sum(p.signed_fen for p in candidates) != line.signed_fen:
            continue
        chosen = _subset_paying(line, candidates)
        if chosen is not None:
            state.take(MatchRule.BATCH_REFERENCE, chosen, [line.ref])


def _by_amount_and_date(state: _Open) -> None:
    """Per signed amount: payouts by expected date each take the earliest open line within the
    tolerance (with windows of equal width this pairs as many as any pairing could)."""
    lines_by_amount: dict[int, list[LineItem]] = defaultdict(list)
    named: set[str] = set()
    for line in sorted(state.lines.values(), key=lambda ln: (ln.value_date, ln.ref)):
        lines_by_amount[line.signed_fen].append(line)
        named.update(line.batch_refs)
    # Payouts of a file an open line names wait for it: they go last, so that a line without
    # reference of the same amount goes to a payout nobody else claims.
    waiting_for_batch = {p.key for p in state.payouts.values() if p.batch_refs & named}
    order = sorted(
        state.payouts.values(),
        key=lambda p: (p.key in waiting_for_batch, p.expected_date, p.key),
    )
    for payout in order:
        waiting = lines_by_amount.get(payout.signed_fen, [])
        for index, line in enumerate(waiting):
            if state.near(payout, line):
                del waiting[index]
                state.take(MatchRule.AMOUNT_DATE, [payout.key], [line.ref])
                break


def _whole_day_paid(state: _Open, line: LineItem) -> date | None:
    """The nearest expected date within the tolerance whose open payouts (two or more, of the
    line's sign) add up to the line, from the running sums (no payout is visited)."""
    reach = calendar_days_covering(state.tolerance_days)
    days = [line.value_date + timedelta(days=offset) for offset in range(-reach, reach + 1)]
    for day in sorted(days, key=lambda d: (bank_days_between(d, line.value_date), d)):
        count, total = state.day_sums.get((day, line.signed_fen > 0), (0, 0))
        near = bank_days_between(day, line.value_date) <= state.tolerance_days
        if near and count >= 2 and total == line.signed_fen:
            return day
    return None


def _by_batch_date(state: _Open, *, whole_only: bool) -> None:
    for line in sorted(state.lines.values(), key=lambda ln: (ln.value_date, ln.ref)):
        if whole_only:
            day = _whole_day_paid(state, line)
            if day is not None:
                keys = [
                    k
                    for k in sorted(state.by_date[day])
                    if _same_sign(state.payouts[k].signed_fen, line.signed_fen)
                ]
                state.take(MatchRule.BATCH_DATE, keys, [line.ref])
            continue
        by_date: dict[date, list[ExpectedPayout]] = defaultdict(list)
        for payout in state.near_payouts(line):
            by_date[payout.expected_date].append(payout)
        nearest = sorted(by_date, key=lambda d: (bank_days_between(d, line.value_date), d))
        for expected in nearest:
            chosen = _subset_paying(line, by_date[expected])
            if chosen is not None and len(chosen) > 1:
                state.take(MatchRule.BATCH_DATE, chosen, [line.ref])
                break


def _same_sign(first: int, second: int) -> bool:
    return (first > 0) == (second > 0)


def _subset_paying(line: LineItem, candidates: Sequence[ExpectedPayout]) -> list[str] | None:
    """Keys of payouts adding up to the line's amount: all of them if they do (batch booking),
    else a bounded search over the nearest SUBSET_CANDIDATES_MAX; None if none is found."""
    if not candidates:
        return None
    if sum(p.signed_fen for p in candidates) == line.signed_fen:
        return sorted(p.key for p in candidates)
    nearest = sorted(
        candidates,
        key=lambda p: (bank_days_between(p.expected_date, line.value_date), p.key),
    )[:SUBSET_CANDIDATES_MAX]
    amounts = sorted(((abs(p.signed_fen), p.key) for p in nearest), reverse=True)
    found = _subset_sum(amounts, abs(line.signed_fen))
    return sorted(found) if found else None


def _subset_sum(amounts: Sequence[tuple[int, str]], target: int) -> list[str] | None:
    """Depth-first over amounts (largest first) with the sum of what is left as a bound;
    gives up after SUBSET_SEARCH_STEPS_MAX steps."""
    suffix = [0] * (len(amounts) + 1)
    for index in range(len(amounts) - 1, -1, -1):
        suffix[index] = suffix[index + 1] + amounts[index][0]
    steps = 0
    stack: list[tuple[int, int, tuple[str, ...]]] = [(0, target, ())]
    while stack:
        steps += 1
        if steps > SUBSET_SEARCH_STEPS_MAX:
            return None
        index, left, chosen = stack.pop()
        if left == 0:
            return list(chosen)
        if index == len(amounts) or suffix[index] < left:
            continue
        amount, key = amounts[index]
        stack.append((index + 1, left, chosen))  # without it (tried second)
        if amount <= left:
            stack.append((index + 1, left - amount, (*chosen, key)))  # with it (tried first)
    return None
