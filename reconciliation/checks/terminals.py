"""Check 2, the terminals: per terminal and business day, what the terminals uploaded against
what clearing posted plus what it holds (quarantine) or set aside (duplicates, void torn taps);
each batch's declared count and amount against the records stored for it; batches that only
repeat records already uploaded; taps held as forged; and the terminal serials never uploaded
(the open gaps clearing/ingest keeps with clearing/ingest/gaps.py), with their age, until the
records arrive.

Set-based SQL on clearing's tables, one row per terminal or per batch streamed back (never the
day's taps in Python). Reads only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Integer, and_, case, func, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.engine.models import ClearedTap, TapDisposition
from clearing.engine.reasons import QuarantineReason
from clearing.ingest.models import OPEN_RECORDS, IngestBatch, SequenceGap, TapOpen, TapRecord
from clearing.records import TapState
from reconciliation.checks.base import BreakKind, CheckContext, CheckResult, Finding, Scope

taps = TapRecord.__table__
open_taps = TapOpen.__table__
batches = IngestBatch.__table__
cleared = ClearedTap.__table__
dispositions = TapDisposition.__table__
gaps = SequenceGap.__table__

HELD = (TapState.QUARANTINED.value, TapState.WRITTEN_OFF.value)
# A batch is looked for among those received from the day's start to this long after its end
# (terminals upload late when offline; older batches were reconciled by their own day's run).
BATCH_LATE_MAX = timedelta(days=30)


def _flag(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _amount(condition: Any, amount: Any) -> Any:
    return func.coalesce(func.sum(case((condition, amount), else_=0)), 0)


def totals_differ(row: Any) -> dict[str, int] | None:
    """What does not add up for one terminal's day (None when everything is accounted for)."""
    accounted = row.posted + row.held + row.disposed
    accounted_fen = row.posted_fen + row.held_fen + row.disposed_fen
    if row.uploaded == accounted and row.uploaded_fen == accounted_fen and not row.unprocessed:
        if row.posted_fen == row.posted_record_fen:
            return None
    return {
        "uploaded": int(row.uploaded),
        "uploaded_fen": int(row.uploaded_fen),
        "posted": int(row.posted),
        "posted_fen": int(row.posted_fen),
        "posted_record_fen": int(row.posted_record_fen),
        "quarantined": int(row.held),
        "quarantined_fen": int(row.held_fen),
        "set_aside": int(row.disposed),
        "set_aside_fen": int(row.disposed_fen),
        "not_yet_cleared": int(row.unprocessed),
    }


class TerminalCheck:
    name = "terminals"
    kinds = (
        BreakKind.TERMINAL_GAP,
        BreakKind.BATCH_DUPLICATED,
        BreakKind.TERMINAL_TOTALS,
        BreakKind.TAP_FORGED,
    )

    async def run(self, ctx: CheckContext) -> CheckResult:
        result = CheckResult()
        await self._terminal_days(ctx, result)
        await self._batches(ctx, result)
        await self._forged(ctx.conn, result)
        await self._gaps(ctx, result)
        return result

    async def _terminal_days(self, ctx: CheckContext, result: CheckResult) -> None:
        is_posted = cleared.c.tap_record_id.is_not(None)
        is_disposed = dispositions.c.tap_record_id.is_not(None)
        is_held = taps.c.state.in_(HELD)
        # A tap's cleared row carries the tap's own occurred_at (the engine copies it): bounding
        # both sides by the day lets PostgreSQL read one day of each (BRIN, migration
        # 0013_dayindexes) instead of joining the day's taps to every cleared tap ever.
        posted_in_day = and_(
            cleared.c.tap_record_id == taps.c.id,
            cleared.c.occurred_at >= ctx.day_start,
            cleared.c.occurred_at < ctx.day_end,
        )
        query = (
            select(
                taps.c.terminal_id,
                func.count().label("uploaded"),
                func.coalesce(func.sum(taps.c.amount_fen), 0).label("uploaded_fen"),
                _flag(is_posted).label("posted"),
                func.coalesce(func.sum(cleared.c.amount_fen), 0).label("posted_fen"),
                _amount(is_posted, taps.c.amount_fen).label("posted_record_fen"),
                _flag(is_held).label("held"),
                _amount(is_held, taps.c.amount_fen).label("held_fen"),
                _flag(is_disposed).label("disposed"),
                _amount(is_disposed, taps.c.amount_fen).label("disposed_fen"),
                _flag(taps.c.state == TapState.RECEIVED.value).label("unprocessed"),
            )
            .select_from(
                taps.outerjoin(cleared, posted_in_day).outerjoin(
                    dispositions, dispositions.c.tap_record_id == taps.c.id
                )
            )
            .where(taps.c.occurred_at >= ctx.day_start, taps.c.occurred_at < ctx.day_end)
            .group_by(taps.c.terminal_id)
        )
        day = ctx.business_day.isoformat()
        async for row in await ctx.conn.stream(query):
            result.total += 1
            differs = totals_differ(row)
            if differs is None:
                result.matched += 1
                continue
            gap_fen = differs["uploaded_fen"] - differs["posted_fen"] - differs["quarantined_fen"]
            result.add(
                Finding(
                    BreakKind.TERMINAL_TOTALS,
                    f"{row.terminal_id}:day:{day}",
                    abs(gap_fen - differs["set_aside_fen"]),
                    row.terminal_id,
                    differs,
                )
            )

    async def _batches(self, ctx: CheckContext, result: CheckResult) -> None:
        is_duplicate = dispositions.c.disposition == "duplicate"
        stored = (
            func.count(taps.c.id).label("stored"),
            func.coalesce(func.sum(taps.c.amount_fen), 0).label("stored_fen"),
            _flag(is_duplicate).label("duplicates"),
            func.min(taps.c.occurred_at).label("first_at"),
        )
        declared = (
            batches.c.id,
            batches.c.terminal_id,
            batches.c.batch_id,
            batches.c.record_count,
            batches.c.amount_fen_total,
        )
        received = and_(
            batches.c.received_at >= ctx.day_start,
            batches.c.received_at < ctx.day_end + BATCH_LATE_MAX,
        )
        records = taps.outerjoin(dispositions, dispositions.c.tap_record_id == taps.c.id)
        if ctx.dialect == "postgresql":
            # Each batch's records through (batch_pk, record_index): joined plainly, PostgreSQL
            # hashed the whole of tap_records (every day ever staged) for one day's batches.
            counted = (
                select(*stored).select_from(records).where(taps.c.batch_pk == batches.c.id)
            ).lateral()
            per_batch = (
                select(*declared, *counted.c)
                .select_from(batches.join(counted, true()))
                .where(received)
                .subquery()
            )
        else:
            per_batch = (
                select(*declared, *stored)
                .select_from(batches.outerjoin(records, taps.c.batch_pk == batches.c.id))
                .where(received)
                .group_by(*declared)
                .subquery()
            )
        query = select(per_batch).where(
            and_(per_batch.c.first_at >= ctx.day_start, per_batch.c.first_at < ctx.day_end)
        )
        async for b in await ctx.conn.stream(query):
            result.total += 1
            key = f"{b.terminal_id}:batch:{b.batch_id}"
            if b.stored != b.record_count or b.stored_fen != b.amount_fen_total:
                details = {
                    "batch_id": b.batch_id,
                    "declared": int(b.record_count),
                    "declared_fen": int(b.amount_fen_total),
                    "stored": int(b.stored),
                    "stored_fen": int(b.stored_fen),
                }
                amount = abs(int(b.amount_fen_total) - int(b.stored_fen))
                result.add(Finding(BreakKind.TERMINAL_TOTALS, key, amount, b.terminal_id, details))
            elif b.stored > 0 and b.duplicates == b.stored:
                details = {
                    "batch_id": b.batch_id,
                    "records": int(b.stored),
                    "note": "every record was uploaded before: nothing moved twice",
                }
                result.add(
                    Finding(
                        BreakKind.BATCH_DUPLICATED, key, int(b.stored_fen), b.terminal_id, details
                    )
                )
            else:
                result.matched += 1

    async def _forged(self, conn: AsyncConnection, result: CheckResult) -> None:
        """Every tap held in quarantine because its TAC does not verify (any day: standing)."""
        query = (
            select(
                taps.c.id,
                taps.c.terminal_id,
                taps.c.terminal_seq,
                taps.c.card_no,
                taps.c.card_counter,
                taps.c.amount_fen,
                taps.c.occurred_at,
                taps.c.state_changed_at,
            )
            .select_from(OPEN_RECORDS)
            .where(
                open_taps.c.state == TapState.QUARANTINED.value,
                taps.c.quarantine_reason == QuarantineReason.BAD_TAC.value,
            )
        )
        async for t in await conn.stream(query):
            details = {
                "tap_record_id": int(t.id),
                "terminal_seq": int(t.terminal_seq),
                "card_no": t.card_no,
                "card_counter": int(t.card_counter),
                "occurred_at": t.occurred_at.isoformat(),
            }
            result.add(
                Finding(
                    BreakKind.TAP_FORGED,
                    f"tap:{t.id}",
                    int(t.amount_fen),
                    t.terminal_id,
                    details,
                    Scope.STANDING,
                    t.state_changed_at,
                )
            )

    async def _gaps(self, ctx: CheckContext, result: CheckResult) -> None:
        """Open serial gaps of every terminal (standing: listed until the records arrive)."""
        missing = (gaps.c.to_seq - gaps.c.from_seq + 1).cast(Integer)
        query = select(
            gaps.c.terminal_id,
            gaps.c.from_seq,
            gaps.c.to_seq,
            gaps.c.detected_at,
            missing.label("missing"),
        ).order_by(gaps.c.terminal_id, gaps.c.from_seq)
        async for g in await ctx.conn.stream(query):
            details = {
                "from_seq": int(g.from_seq),
                "to_seq": int(g.to_seq),
                "missing": int(g.missing),
            }
            result.add(
                Finding(
                    BreakKind.TERMINAL_GAP,
                    f"{g.terminal_id}:{g.from_seq}-{g.to_seq}",
                    0,
                    g.terminal_id,
                    details,
                    Scope.STANDING,
                    g.detected_at,
                )
            )
