"""The offline checker: recompute every balance from the transfers and verify the ledger's laws.

Read-only (SELECTs only): safe to run against production. It reports problems as data; the
command line (`onecard ledger check`) prints them and exits non-zero if there is any.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import and_, case, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.tables import accounts, clock, from_uuid, ledgers, transfers
from ledger.types import AccountFlags, TransferFlags

# The report lists at most this many problems of each kind (the counts stay exact).
PROBLEMS_PER_KIND_MAX = 50


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    subject: str
    detail: str


@dataclass(slots=True)
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    accounts_checked: int = 0
    transfers_checked: int = 0
    ledgers_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.counts

    def add(self, kind: str, subject: str, detail: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= PROBLEMS_PER_KIND_MAX:
            self.problems.append(Problem(kind, subject, detail))


def _hex(value: object) -> str:
    return f"{from_uuid(value):#034x}"  # type: ignore[arg-type]


async def check_ledger(conn: AsyncConnection) -> CheckReport:
    """Run every check; returns a report (never raises for a finding)."""
    report = CheckReport()
    names: dict[int, str] = {}
    stored: dict[int, tuple[int, int, int, int]] = {}
    flags_of: dict[int, int] = {}
    ledger_of: dict[int, int] = {}
    ledger_ids = {r[0] for r in await conn.execute(select(ledgers.c.id))}
    report.ledgers_checked = len(ledger_ids)

    for r in await conn.execute(
        select(
            accounts.c.id,
            accounts.c.name,
            accounts.c.ledger,
            accounts.c.flags,
            accounts.c.debits_pending,
            accounts.c.debits_posted,
            accounts.c.credits_pending,
            accounts.c.credits_posted,
        )
    ):
        aid = from_uuid(r[0])
        names[aid] = r[1]
        ledger_of[aid] = r[2]
        flags_of[aid] = r[3]
        stored[aid] = (r[4], r[5], r[6], r[7])
        if r[2] not in ledger_ids:
            report.add("account_ledger_missing", r[1], f"ledger {r[2]} does not exist")
    report.accounts_checked = len(stored)

    # Recompute the four balances of every account from the transfers. A post, void or expiry
    # row releases its pending transfer's full amount; a post then posts its own amount.
    pending = transfers.alias("pending")
    is_pending = transfers.c.flags.op("&")(int(TransferFlags.PENDING)) != 0
    is_post = transfers.c.flags.op("&")(int(TransferFlags.POST_PENDING_TRANSFER)) != 0
    resolves = transfers.c.pending_id.is_not(None)
    released = func.coalesce(pending.c.amount, 0)
    pending_delta = func.sum(case((is_pending, transfers.c.amount), (resolves, -released), else_=0))
    posted_delta = func.sum(
        case((is_pending, 0), (and_(resolves, ~is_post), 0), else_=transfers.c.amount)
    )
    joined = transfers.outerjoin(pending, pending.c.id == transfers.c.pending_id)
    computed: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for column, offset in ((transfers.c.debit_account_id, 0), (transfers.c.credit_account_id, 2)):
        rows = await conn.execute(
            select(column, pending_delta, posted_delta, func.count())
            .select_from(joined)
            .group_by(column)
        )
        for r in rows:
            aid = from_uuid(r[0])
            computed[aid][offset] = int(r[1])
            computed[aid][offset + 1] = int(r[2])
            if offset == 0:
                report.transfers_checked += int(r[3])
            if aid not in stored:
                report.add("transfer_account_missing", _hex(r[0]), "transfers name this account")

    labels = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for aid, balances in stored.items():
        expected = computed.get(aid, [0, 0, 0, 0])
        for label, have, want in zip(labels, balances, expected, strict=True):
            if have != want:
                report.add(
                    "balance_mismatch",
                    names[aid],
                    f"{label} is {have} but the transfers add up to {want}",
                )
        for k in range(4):
            totals[ledger_of[aid]][k] += balances[k]
        dp, dpo, cp, cpo = balances
        if min(balances) < 0:
            report.add("negative_balance", names[aid], f"balances {balances}")
        flags = flags_of[aid]
        if flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS and dp + dpo > cpo:
            report.add(
                "flag_violated",
                names[aid],
                f"debits_must_not_exceed_credits: debits {dp}+{dpo} > credits {cpo}",
            )
        if flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS and cp + cpo > dpo:
            report.add(
                "flag_violated",
                names[aid],
                f"credits_must_not_exceed_debits: credits {cp}+{cpo} > debits {dpo}",
            )
    for ledger_id, (dp, dpo, cp, cpo) in sorted(totals.items()):
        if dpo != cpo:
            report.add(
                "ledger_unbalanced",
                f"ledger {ledger_id}",
                f"total debits_posted {dpo} != total credits_posted {cpo}",
            )
        if dp != cp:
            report.add(
                "ledger_unbalanced",
                f"ledger {ledger_id}",
                f"total debits_pending {dp} != total credits_pending {cp}",
            )

    # Transfers against their accounts' ledger.
    debit = accounts.alias("debit")
    credit = accounts.alias("credit")
    for r in await conn.execute(
        select(transfers.c.id, transfers.c.ledger, debit.c.ledger, credit.c.ledger)
        .join(debit, debit.c.id == transfers.c.debit_account_id)
        .join(credit, credit.c.id == transfers.c.credit_account_id)
        .where((debit.c.ledger != transfers.c.ledger) | (credit.c.ledger != transfers.c.ledger))
    ):
        report.add(
            "ledger_mismatch",
            _hex(r[0]),
            f"transfer ledger {r[1]}, debit account ledger {r[2]}, credit account ledger {r[3]}",
        )

    # Posts, voids and expiries against the pending transfer they resolve.
    for r in await conn.execute(
        select(
            transfers.c.id,
            transfers.c.flags,
            transfers.c.amount,
            pending.c.id,
            pending.c.flags,
            pending.c.amount,
        )
        .select_from(joined)
        .where(resolves)
    ):
        if r[3] is None:
            report.add("pending_missing", _hex(r[0]), f"resolves unknown pending {r[3]}")
        elif not r[4] & TransferFlags.PENDING:
            report.add("pending_not_pending", _hex(r[0]), "resolves a transfer that is not pending")
        elif r[1] & TransferFlags.POST_PENDING_TRANSFER and r[2] > r[5]:
            report.add("post_exceeds_pending", _hex(r[0]), f"posts {r[2]} of {r[5]}")
        elif not r[1] & TransferFlags.POST_PENDING_TRANSFER and r[2] != r[5]:
            report.add("release_amount_mismatch", _hex(r[0]), f"releases {r[2]} of {r[5]}")

    # Reversals never add up to more than the original.
    original = transfers.alias("original")
    for r in await conn.execute(
        select(transfers.c.reverses_id, func.sum(transfers.c.amount), original.c.amount)
        .select_from(transfers.outerjoin(original, original.c.id == transfers.c.reverses_id))
        .where(transfers.c.reverses_id.is_not(None))
        .group_by(transfers.c.reverses_id, original.c.amount)
    ):
        if r[2] is None:
            report.add("reversed_missing", _hex(r[0]), "reversals name a transfer that is gone")
        elif int(r[1]) > r[2]:
            report.add("over_reversed", _hex(r[0]), f"reversed {r[1]} of {r[2]}")

    # The balances stored on each account's last entry equal the account's balances.
    sides = union_all(
        select(
            transfers.c.debit_account_id.label("aid"),
            transfers.c.timestamp.label("ts"),
            *[transfers.c[f"dr_{label}"].label(label) for label in labels],
        ),
        select(
            transfers.c.credit_account_id.label("aid"),
            transfers.c.timestamp.label("ts"),
            *[transfers.c[f"cr_{label}"].label(label) for label in labels],
        ),
    ).subquery()
    ranked = select(
        sides,
        func.row_number().over(partition_by=sides.c.aid, order_by=sides.c.ts.desc()).label("rn"),
    ).subquery()
    for r in await conn.execute(
        select(ranked.c.aid, *[ranked.c[label] for label in labels]).where(ranked.c.rn == 1)
    ):
        aid = from_uuid(r[0])
        entry = tuple(r[1:5])
        if aid in stored and entry != stored[aid]:
            report.add(
                "history_mismatch",
                names[aid],
                f"last entry says {entry}, the account says {stored[aid]}",
            )

    duplicated = (
        await conn.execute(
            select(func.count()).select_from(
                select(transfers.c.timestamp)
                .group_by(transfers.c.timestamp)
                .having(func.count() > 1)
                .subquery()
            )
        )
    ).scalar_one()
    if duplicated:
        report.add("timestamp_duplicated", "ledger_transfers", f"{duplicated} timestamps repeat")

    last_ns = (await conn.execute(select(clock.c.last_ns))).scalar_one_or_none() or 0
    newest = (await conn.execute(select(func.max(transfers.c.timestamp)))).scalar() or 0
    if newest > last_ns:
        report.add("clock_behind", "ledger_clock", f"clock {last_ns} < newest transfer {newest}")
    return report
