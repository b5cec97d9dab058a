"""Check 3, the cards: per card, the chain of card counters and balances across its purchases
(offline counter) and loads (online counter). Within one purse, counters follow one by one;
across the card, each transaction's balance before is the one after the transaction before it.

- a counter that skips is taps not yet uploaded (a gap, closed when they arrive);
- a card transaction uploaded again inside a batch of new records is a replay (a batch that only
  repeats earlier records is the terminals check's duplicated batch);
- the same counter used by two different transactions, a balance that does not follow from
  the transaction before with no counter missing, or an on-card balance above what the ledger
  holds for the card, is a suspected clone: one break per card, proposed for the deny list
  (finance confirms; reconciliation itself changes nothing).

One SQL statement with window functions (LAG over card_no, counter) streams back only the links
that break; memory holds only those. Works on PostgreSQL and SQLite alike. It reads the day and,
of each card's history, only the transactions the day's links reach (see `_chain_rows`): a night's
run costs the same after a year of history as after a day (bench/reconcile.py --history-days).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    String,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    union,
    union_all,
)

from clearing.engine.models import ClearedTap, QuarantineAction, QuarantineActionRow, TapDisposition
from clearing.engine.reasons import QuarantineReason
from clearing.ingest.models import TapOpen, TapRecord
from clearing.records import TapKind, TapState
from ledger.tables import accounts as ledger_accounts
from reconciliation.checks.base import BreakKind, CheckContext, CheckResult, Finding, Scope

taps = TapRecord.__table__
cleared = ClearedTap.__table__
dispositions = TapDisposition.__table__

# A card's chain is followed this far back before the day (its previous tap may be older).
CHAIN_LOOKBACK = timedelta(days=31)
# Held taps that are still the card's own word (its TAC verified): evidence for the chain.
EVIDENCE_REASONS = (
    QuarantineReason.COUNTER_REUSED_DIFFERENT_AMOUNT.value,
    QuarantineReason.COUNTER_REUSED.value,
    QuarantineReason.BALANCE_CHAIN_BROKEN.value,
    QuarantineReason.CARD_BALANCE_INSUFFICIENT.value,
)
HELD = (TapState.QUARANTINED.value, TapState.WRITTEN_OFF.value)
# The held records' ids from the two small tables that name them (tap_records' `state` is in no
# index, so its HOT updates stay cheap: migration 0010_tapopen): the quarantined in tap_open,
# the written off in the quarantine's audit.
_open = TapOpen.__table__
_actions = QuarantineActionRow.__table__
HELD_IDS = union(
    select(_open.c.tap_record_id).where(_open.c.state == TapState.QUARANTINED.value),
    select(_actions.c.tap_record_id).where(_actions.c.action == QuarantineAction.WRITTEN_OFF),
)


@dataclass(frozen=True, slots=True)
class Link:
    """One transaction of a card next to the one before it in its purse (by card counter)."""

    card_no: str
    purse: str
    card_counter: int
    balance_before_fen: int
    balance_after_fen: int
    occurred_at: Any
    prev_counter: int | None
    prev_after_fen: int | None  # balance after the previous counter of the same purse
    prev_occurred_at: Any


def classify(link: Link, other_purse_fen: int = 0) -> str | None:
    """What a link says: 'reuse', 'gap', 'jump' (balance does not follow) or None (it chains).

    Pure. The card counter orders a purse (terminal clocks may not); a skipped counter explains
    any balance difference (taps not yet uploaded). Between two consecutive counters the balance
    may move only by what the other purse did in between (`other_purse_fen`: loads added,
    purchases taken, between the two taps' times); anything else is money the chain cannot
    explain: a clone, or a card tampered with."""
    if link.prev_counter is None or link.prev_after_fen is None:
        return None
    if link.card_counter == link.prev_counter:
        return "reuse"
    if link.card_counter - link.prev_counter > 1:
        return "gap"
    if link.balance_before_fen == link.prev_after_fen + other_purse_fen:
        return None
    return "jump"


def _probed(ctx: CheckContext, outer: Any, inner: Any, on: Any) -> Any:
    """`inner`'s columns for each row of `outer`, rows found by `on` (a condition on the
    primary key of `inner`'s table). PostgreSQL: a LATERAL sub-select, so each row of `outer`
    is an index probe (joined plainly, the planner may prefer hashing the whole table: its
    history, which grows every day); SQLite: a plain join (its nested loops probe the index)."""
    if ctx.conn.dialect.name == "postgresql":
        probe = inner.where(on).offset(0).lateral()  # OFFSET 0: not pulled up into a join
        return select(*probe.c).select_from(outer.join(probe, true()))
    return inner.select_from(outer).where(on)


def _bytewise(ctx: CheckContext, *columns: Any) -> tuple[Any, ...]:
    """Text columns compared byte by byte (PostgreSQL: COLLATE "C"), for the window's sort: card
    numbers, purse names and terminal ids are ASCII, where it is the order they have anyway,
    and PostgreSQL sorts a million of them several times faster than under a locale."""
    if ctx.conn.dialect.name == "postgresql":
        return tuple(c.collate("C") for c in columns)
    return columns


def _chain_rows(ctx: CheckContext) -> Any:
    """The day's links that break, with LAG over each purse's transactions by card counter.

    The same links as a window over the whole lookback (CHAIN_LOOKBACK), reading only what the
    day's links can reach: the day's posted transactions (one day of `cleared_taps`: its BRIN
    on occurred_at), the few held taps of the lookback, and of the earlier posted transactions
    of each purse active in the day, through the primary key (card, purse, counter):
    - the last one at or below the day's lowest counter (the day's first link);
    - those between the day's lowest and highest counters, which only exist where the day's
      posted counters do not fill that span (a counter is posted once per purse): a purse the
      day filled needs none, and reads no more of its history.
    """
    low, high = ctx.day_start - CHAIN_LOOKBACK, ctx.day_end
    purse = case((taps.c.kind == TapKind.LOAD.value, "online"), else_="offline")
    held_in_lookback = and_(
        taps.c.id.in_(HELD_IDS),
        taps.c.state.in_(HELD),
        taps.c.quarantine_reason.in_(EVIDENCE_REASONS),
        taps.c.occurred_at >= low,
        taps.c.occurred_at < high,
    )
    posted_columns = (
        cleared.c.card_no,
        cleared.c.purse,
        cleared.c.card_counter,
        cleared.c.terminal_id,
        cleared.c.terminal_seq,
        cleared.c.occurred_at,
        cleared.c.balance_before_fen,
        cleared.c.balance_after_fen,
    )
    posted_in_day = select(*posted_columns).where(
        cleared.c.occurred_at >= ctx.day_start, cleared.c.occurred_at < high
    )
    in_day = union_all(
        select(
            cleared.c.card_no, cleared.c.purse, cleared.c.card_counter, literal(1).label("n")
        ).where(cleared.c.occurred_at >= ctx.day_start, cleared.c.occurred_at < high),
        select(taps.c.card_no, purse.label("purse"), taps.c.card_counter, literal(0)).where(
            held_in_lookback, taps.c.occurred_at >= ctx.day_start
        ),
    ).subquery()
    spans = (
        select(
            in_day.c.card_no,
            in_day.c.purse,
            func.min(in_day.c.card_counter).label("lowest"),
            func.max(in_day.c.card_counter).label("highest"),
            func.sum(in_day.c.n).label("posted"),
        )
        .group_by(in_day.c.card_no, in_day.c.purse)
        .subquery()
    )
    before = cleared.alias("before")
    # The purse's last posted counter before the day at or below the day's lowest.
    previous = (
        select(func.max(before.c.card_counter))
        .where(
            before.c.card_no == spans.c.card_no,
            before.c.purse == spans.c.purse,
            before.c.card_counter <= spans.c.lowest,
            before.c.occurred_at >= low,
            before.c.occurred_at < ctx.day_start,
        )
        .scalar_subquery()
    )
    # OFFSET 0: each purse's reach is worked out once, before the join (left to flatten it,
    # PostgreSQL evaluated `previous` once per joined row).
    found = (
        select(spans, func.coalesce(previous, spans.c.lowest).label("first")).offset(0).subquery()
    )
    filled = found.c.posted == found.c.highest - found.c.lowest + 1
    reach = select(
        found.c.card_no,
        found.c.purse,
        found.c.first,
        case((filled, found.c.first), else_=found.c.highest).label("last"),
    ).subquery()
    earlier = _probed(
        ctx,
        reach,
        select(*posted_columns),
        and_(
            cleared.c.card_no == reach.c.card_no,
            cleared.c.purse == reach.c.purse,
            cleared.c.card_counter >= reach.c.first,
            cleared.c.card_counter <= reach.c.last,
            cleared.c.occurred_at >= low,
            cleared.c.occurred_at < ctx.day_start,
        ),
    ).subquery()
    held = select(
        taps.c.card_no,
        purse.label("purse"),
        taps.c.card_counter,
        taps.c.terminal_id,
        taps.c.terminal_seq,
        taps.c.occurred_at,
        taps.c.balance_before_fen,
        taps.c.balance_after_fen,
    ).where(held_in_lookback)
    u = union_all(posted_in_day, select(*earlier.c), held).subquery()
    card_no, purse_name, terminal_id = _bytewise(ctx, u.c.card_no, u.c.purse, u.c.terminal_id)
    in_purse = {
        "partition_by": (card_no, purse_name),
        "order_by": (u.c.card_counter, u.c.occurred_at, terminal_id, u.c.terminal_seq),
    }
    w = select(
        u,
        func.lag(u.c.card_counter).over(**in_purse).label("prev_counter"),
        func.lag(u.c.balance_after_fen).over(**in_purse).label("prev_after_fen"),
        func.lag(u.c.occurred_at).over(**in_purse).label("prev_occurred_at"),
    ).subquery()
    return select(w).where(
        w.c.occurred_at >= ctx.day_start,
        or_(
            w.c.card_counter == w.c.prev_counter,
            w.c.card_counter - w.c.prev_counter > 1,
            w.c.balance_before_fen != w.c.prev_after_fen,
        ),
    )


async def _other_purse_fen(ctx: CheckContext, link: Link) -> int:
    """What the card's other purse moved between two consecutive taps of this one (posted)."""
    low, high = sorted((link.prev_occurred_at, link.occurred_at))
    signed = case((cleared.c.purse == "online", cleared.c.amount_fen), else_=-cleared.c.amount_fen)
    row = await ctx.conn.execute(
        select(func.coalesce(func.sum(signed), 0)).where(
            cleared.c.card_no == link.card_no,
            cleared.c.purse != link.purse,
            cleared.c.occurred_at >= low,
            cleared.c.occurred_at <= high,
        )
    )
    return int(row.scalar_one())


def _ahead_of_ledger(ctx: CheckContext) -> Any:
    """Cards that tapped in the day whose last posted balance is above their ledger account.

    Each purse's last posted transaction is found by its highest counter through the primary
    key (card, purse, counter), not by reading the card's whole history."""
    active = (
        select(cleared.c.card_no)
        .where(cleared.c.occurred_at >= ctx.day_start, cleared.c.occurred_at < ctx.day_end)
        .distinct()
        .subquery()
    )
    purses = union_all(
        select(literal("offline").label("purse")), select(literal("online"))
    ).subquery()
    latest = cleared.alias("latest")
    last_counter = (
        select(func.max(latest.c.card_counter))
        .where(latest.c.card_no == active.c.card_no, latest.c.purse == purses.c.purse)
        .scalar_subquery()
    )
    # OFFSET 0: each purse's last counter once, then its row by the primary key.
    lasts = (
        select(active.c.card_no, purses.c.purse, last_counter.label("card_counter"))
        .select_from(active.join(purses, true()))  # both purses of each card
        .offset(0)
        .subquery()
    )
    top = _probed(
        ctx,
        lasts,
        select(cleared.c.card_no, cleared.c.balance_after_fen, cleared.c.occurred_at),
        and_(
            cleared.c.card_no == lasts.c.card_no,
            cleared.c.purse == lasts.c.purse,
            cleared.c.card_counter == lasts.c.card_counter,
        ),
    ).subquery()
    # The later of the purses' last transactions (at most two rows per card).
    ranked = select(
        top.c.card_no,
        top.c.balance_after_fen,
        func.row_number()
        .over(partition_by=top.c.card_no, order_by=top.c.occurred_at.desc())
        .label("rn"),
    ).subquery()
    ledger_fen = ledger_accounts.c.credits_posted - ledger_accounts.c.debits_posted
    return (
        select(ranked.c.card_no, ranked.c.balance_after_fen, ledger_fen.label("ledger_fen"))
        .select_from(
            ranked.join(
                ledger_accounts,
                ledger_accounts.c.name == literal("card:", String) + ranked.c.card_no,
            )
        )
        .where(ranked.c.rn == 1, ranked.c.balance_after_fen > ledger_fen)
    )


def _replays(ctx: CheckContext) -> Any:
    """Duplicates of the day inside a batch that also brought new records."""
    other = taps.alias("other")
    other_disposition = dispositions.alias("other_disposition")
    fresh_in_batch = exists(
        select(other.c.id)
        .select_from(
            other.outerjoin(other_disposition, other_disposition.c.tap_record_id == other.c.id)
        )
        .where(
            other.c.batch_pk == taps.c.batch_pk,
            or_(
                other_disposition.c.disposition.is_(None),
                other_disposition.c.disposition != "duplicate",
            ),
        )
    )
    return (
        select(
            taps.c.id,
            taps.c.card_no,
            taps.c.kind,
            taps.c.card_counter,
            taps.c.amount_fen,
            taps.c.terminal_id,
            taps.c.terminal_seq,
            dispositions.c.duplicate_of,
        )
        .select_from(taps.join(dispositions, dispositions.c.tap_record_id == taps.c.id))
        .where(
            and_(dispositions.c.disposition == "duplicate", fresh_in_batch),
            taps.c.occurred_at >= ctx.day_start,
            taps.c.occurred_at < ctx.day_end,
        )
    )


async def _links_in_day(ctx: CheckContext) -> int:
    in_day = and_(cleared.c.occurred_at >= ctx.day_start, cleared.c.occurred_at < ctx.day_end)
    posted = (await ctx.conn.execute(select(func.count()).where(in_day))).scalar_one()
    held = (
        await ctx.conn.execute(
            select(func.count()).where(
                taps.c.id.in_(HELD_IDS),
                taps.c.state.in_(HELD),
                taps.c.quarantine_reason.in_(EVIDENCE_REASONS),
                taps.c.occurred_at >= ctx.day_start,
                taps.c.occurred_at < ctx.day_end,
            )
        )
    ).scalar_one()
    return int(posted) + int(held)


class CardCheck:
    name = "cards"
    kinds = (BreakKind.CARD_COUNTER_GAP, BreakKind.CARD_REPLAY, BreakKind.CARD_CLONE_SUSPECTED)

    async def run(self, ctx: CheckContext) -> CheckResult:
        result = CheckResult(total=await _links_in_day(ctx))
        clones: dict[str, dict[str, Any]] = {}
        broken = await self._chains(ctx, result, clones)
        async for r in await ctx.conn.stream(_ahead_of_ledger(ctx)):
            evidence = clones.setdefault(r.card_no, {"reused_counters": [], "jumps": []})
            evidence["on_card_fen"] = int(r.balance_after_fen)
            evidence["ledger_fen"] = int(r.ledger_fen)
        for card_no, evidence in sorted(clones.items()):
            self._clone(result, card_no, evidence)
        async for r in await ctx.conn.stream(_replays(ctx)):
            broken += 1
            purse = "online" if r.kind == TapKind.LOAD.value else "offline"
            details = {
                "tap_record_id": int(r.id),
                "duplicate_of": r.duplicate_of,
                "terminal_id": r.terminal_id,
                "terminal_seq": int(r.terminal_seq),
            }
            key = f"{r.card_no}:{purse}:{r.card_counter}:{r.id}"
            result.add(Finding(BreakKind.CARD_REPLAY, key, int(r.amount_fen), r.card_no, details))
        result.matched = max(0, result.total - broken)
        return result

    async def _chains(
        self, ctx: CheckContext, result: CheckResult, clones: dict[str, dict[str, Any]]
    ) -> int:
        """Walk the links that break; gaps become findings, clone evidence gathers per card."""
        broken = 0
        async for r in await ctx.conn.stream(_chain_rows(ctx)):
            link = Link(
                r.card_no,
                r.purse,
                r.card_counter,
                r.balance_before_fen,
                r.balance_after_fen,
                r.occurred_at,
                r.prev_counter,
                r.prev_after_fen,
                r.prev_occurred_at,
            )
            what = classify(link)
            if what == "jump":  # rare: ask what the other purse did in between
                what = classify(link, await _other_purse_fen(ctx, link))
            if what is None:
                continue
            broken += 1
            if what == "gap":
                self._gap(result, link)
                continue
            evidence = clones.setdefault(link.card_no, {"reused_counters": [], "jumps": []})
            if what == "reuse":
                evidence["reused_counters"].append(f"{link.purse}:{link.card_counter}")
                spent = abs(link.balance_before_fen - link.balance_after_fen)
                evidence["reused_fen"] = evidence.get("reused_fen", 0) + spent
            else:
                evidence["jumps"].append(
                    [link.card_counter, link.prev_after_fen, link.balance_before_fen]
                )
        return broken

    def _gap(self, result: CheckResult, link: Link) -> None:
        first = (link.prev_counter or 0) + 1
        missing_fen = abs((link.prev_after_fen or 0) - link.balance_before_fen)
        details = {
            "purse": link.purse,
            "from_counter": first,
            "to_counter": link.card_counter - 1,
            "missing": link.card_counter - first,
            "next_at": link.occurred_at.isoformat(),
        }
        result.add(
            Finding(
                BreakKind.CARD_COUNTER_GAP,
                f"{link.card_no}:{link.purse}:{first}",
                missing_fen,
                link.card_no,
                details,
            )
        )

    def _clone(self, result: CheckResult, card_no: str, evidence: dict[str, Any]) -> None:
        amount = evidence.get("reused_fen", 0)
        if "on_card_fen" in evidence:
            amount = max(amount, evidence["on_card_fen"] - evidence["ledger_fen"])
        for _, before, after in evidence["jumps"]:
            amount = max(amount, abs(after - before))
        evidence["proposal"] = "deny"  # finance confirms with `onecard breaks deny-card`
        result.add(
            Finding(
                BreakKind.CARD_CLONE_SUSPECTED,
                f"card:{card_no}",
                amount,
                card_no,
                evidence,
                Scope.DAY,
            )
        )
