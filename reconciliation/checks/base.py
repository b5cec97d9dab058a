"""The check interface every reconciliation check and matcher implements, and the break kinds.

How to add a check (the bank statement and funds matchers plug in this way):

1. Declare its break kinds below in `BreakKind` (a value is stored forever: never rename one).
2. Write a class with a `name` (stable, lower_snake: it keys the match rates of every run),
   the `kinds` it may report (a run closes an open break of one of these kinds that the check
   no longer finds), and `async def run(self, ctx: CheckContext) -> CheckResult`.
   - Read through `ctx.conn` (one read-only SQL connection; the run owns the transaction) and
     `ctx.reader` (ledger.reader.LedgerReader). Never write, never move money.
   - Stream set-based SQL; keep at most `FINDINGS_PER_CHECK_MAX` findings in memory.
   - Put pure matching logic in plain functions (Hypothesis tests them by the thousand).
   - Return `CheckResult(matched, total, findings)`: `total` items looked at, `matched` of them
     reconciled automatically (the auto-match rate of every run is matched / total).
3. Add an instance to `CHECKS` in reconciliation/checks/__init__.py (the run executes them in
   that order).

A `Finding` is one fault: `kind`, a `key` that names the same fault identically on every run
(a re-run must find the same breaks), `amount_fen` (0 when no money is known), `counterpart`
(a terminal, card, participant, account or fund), JSON `details`, and `scope`:
`Scope.DAY` for a fault of the run's business day (its key should contain the day; a re-run of
that day closes it if it is gone), `Scope.STANDING` for a state seen at run time (a terminal
gap, a suspected clone; any later run that no longer sees it closes it). `first_seen_at` is
when the data says the fault began (e.g. when a gap was detected), else the run's time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.calendar import BusinessCalendar
from ledger.reader import LedgerReader

# A check that finds more keeps counting (matched/total stay exact) but keeps no more breaks:
# something is badly wrong and finance needs the first ones, not a million.
FINDINGS_PER_CHECK_MAX = 10_000
KEY_LENGTH_MAX = 200
COUNTERPART_LENGTH_MAX = 100


class BreakKind(enum.StrEnum):
    """Every kind of break; the value is what `recon_breaks.kind` stores."""

    # 1. ledger
    LEDGER_UNBALANCED = "ledger_unbalanced"  # total debits != total credits of one ledger
    BALANCE_MISMATCH = "balance_mismatch"  # an account's balance != the sum of its transfers
    FLOAT_MISMATCH = "float_mismatch"  # residents' money != what the escrow side holds for it
    # 2. terminals
    TERMINAL_GAP = "terminal_gap"  # terminal serials never uploaded (a batch not yet sent)
    BATCH_DUPLICATED = "batch_duplicated"  # a batch whose records were all uploaded before
    TERMINAL_TOTALS = "terminal_totals"  # uploaded != posted + quarantined + duplicates
    TAP_FORGED = "tap_forged"  # a tap whose TAC the card never made (held in quarantine)
    # 3. cards
    CARD_COUNTER_GAP = "card_counter_gap"  # card counters skipped: taps not yet uploaded
    CARD_REPLAY = "card_replay"  # one card transaction uploaded again in another batch
    CARD_CLONE_SUSPECTED = "card_clone_suspected"  # balances that do not follow: deny it?
    # 4. Stripe (reconciliation/checks/stripe.py; its payouts through check 5)
    STRIPE_PAYMENT_UNPOSTED = "stripe_payment_unposted"  # Stripe charged, nothing posted
    STRIPE_PAYMENT_UNKNOWN = "stripe_payment_unknown"  # posted, Stripe has no charge for it
    STRIPE_AMOUNT_MISMATCH = "stripe_amount_mismatch"  # Stripe's amount != the posted one
    STRIPE_FEE_MISMATCH = "stripe_fee_mismatch"  # Stripe's fee != the fee booked
    STRIPE_PAYOUT_UNMATCHED = "stripe_payout_unmatched"  # a payout not (in full) on the statement
    # 5. bank statement (reconciliation/checks/bank.py)
    BANK_CREDIT_MISSING = "bank_credit_missing"  # a payout not on the statement past tolerance
    BANK_LINE_UNEXPLAINED = "bank_line_unexplained"  # a statement line no payout explains
    BANK_AMOUNT_MISMATCH = "bank_amount_mismatch"  # a line names a payout, its amount differs
    # 7. funds (reconciliation/checks/funds.py)
    FUND_CLAIM_OVERDUE = "fund_claim_overdue"  # a fund's claim unpaid (in part) past its terms
    FUND_OVERPAID = "fund_overpaid"  # a fund paid more than all it owes
    # 8. the escrow balance (reconciliation/checks/escrow.py)
    BANK_BALANCE_MISMATCH = "bank_balance_mismatch"  # bank's closing balance != bank:escrow
    # 6. billers (reconciliation/checks/billers.py)
    BILLER_UNCONFIRMED = "biller_unconfirmed"  # a bill payment the biller's file does not list
    BILLER_CONFIRMATION_UNEXPLAINED = "biller_confirmation_unexplained"  # listed, not paid by us
    # any check reading an outside system (reconciliation/run.py): Stripe or a biller did not
    # answer, the check was not done for the day; a re-run that reaches it closes this
    SOURCE_NOT_REACHED = "source_not_reached"


class Scope(enum.StrEnum):
    DAY = "day"  # a fault of one business day's data
    STANDING = "standing"  # a state seen at run time, closed by any later run that misses it


@dataclass(frozen=True, slots=True)
class Finding:
    kind: BreakKind
    key: str
    amount_fen: int
    counterpart: str
    details: dict[str, Any] = field(default_factory=dict)
    scope: Scope = Scope.DAY
    first_seen_at: datetime | None = None

    def __post_init__(self) -> None:
        if not 0 < len(self.key) <= KEY_LENGTH_MAX:
            raise ValueError(f"a finding's key is 1..{KEY_LENGTH_MAX} characters: {self.key!r}")
        if len(self.counterpart) > COUNTERPART_LENGTH_MAX:
            raise ValueError(f"counterpart longer than {COUNTERPART_LENGTH_MAX}")


@dataclass(slots=True)
class CheckResult:
    """What one check found: its match counts and its findings (bounded)."""

    matched: int = 0
    total: int = 0
    findings: list[Finding] = field(default_factory=list)
    truncated: int = 0  # findings left out above FINDINGS_PER_CHECK_MAX

    def add(self, finding: Finding) -> None:
        if len(self.findings) < FINDINGS_PER_CHECK_MAX:
            self.findings.append(finding)
        else:
            self.truncated += 1

    @property
    def match_rate(self) -> float:
        return 1.0 if self.total == 0 else self.matched / self.total


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a check may read: the run's connection, the ledger reader, the day and its window."""

    conn: AsyncConnection
    reader: LedgerReader
    business_day: date
    calendar: BusinessCalendar
    now: datetime
    # The ledger time [since, until) the ledger check reads (reconciliation.repository.
    # ledger_window: the run's windows chain day after day). None: the business day's own hours
    # in posting time (a check run on its own, outside a run).
    ledger_window: tuple[int, int] | None = None
    # The ledger check also checks every account's balances against its last entry (the weekly
    # sweep), not only those of the accounts the window touched.
    sweep_accounts: bool = False

    @property
    def day_start(self) -> datetime:
        return self.calendar.day_start(self.business_day)

    @property
    def day_end(self) -> datetime:
        return self.calendar.day_end(self.business_day)

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name


class Check(Protocol):
    name: str
    kinds: tuple[BreakKind, ...]

    async def run(self, ctx: CheckContext) -> CheckResult: ...
