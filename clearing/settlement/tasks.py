"""Settlement at the edge: the Celery task (beat runs it after the cut-off) and the helper the
command line shares with it. Thin: the rules are in clearing/settlement/service.py.

The task settles closed days only: closing a day early needs a second finance officer
(clearing/approvals, kind early_settlement), which no task can be."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from celery import shared_task

from clearing.errors import SecondPersonRequired
from clearing.settings import Settings, get_settings
from clearing.settlement.service import (
    DayNotClosed,
    FutureUndone,
    Settlement,
    SettlementFiles,
    calendar_of,
    remove_files,
    settle_and_write,
    settlement_dir,
    undo_future_settlements,
)
from ledger.writer import Ledger


async def settle(
    settings: Settings,
    business_day: date | None,
    *,
    actor: str,
    now: datetime | None = None,
) -> tuple[Settlement, SettlementFiles]:
    """Settle a closed day (default: the last closed one) and write its files. Closing a day
    early is an approval's (clearing/approvals), never this helper's."""
    async with await Ledger.open(settings.resolved_database_url()) as ledger:
        return await settle_and_write(
            ledger.transaction,
            ledger,
            settings,
            business_day,
            now=now or datetime.now(UTC),
            actor=actor,
        )


async def undo_future(
    settings: Settings, *, now: datetime | None = None
) -> tuple[FutureUndone, list[Path]]:
    """Undo settlements of days that had not begun (see the service) and remove their files."""
    async with await Ledger.open(settings.resolved_database_url()) as ledger:
        async with ledger.transaction() as conn:
            undone = await undo_future_settlements(
                conn, calendar=calendar_of(settings), now=now or datetime.now(UTC)
            )
    return undone, remove_files(undone.days, settlement_dir(settings))


@shared_task(name="clearing.settle_day", acks_late=True, reject_on_worker_lost=True)
def settle_task(business_day: str | None = None, force: bool = False) -> dict[str, Any]:
    """Settle a closed business day (ISO date; default the last closed day). Idempotent.

    `force` closes nothing early: the day settles only if its cut-off has passed or a second
    finance officer approved its early settlement (which settled it); otherwise the task is
    refused with second_person_required, as `onecard settle --force` and the API ask."""
    day = date.fromisoformat(business_day) if business_day else None
    try:
        settlement, files = asyncio.run(settle(get_settings(), day, actor="beat"))
    except DayNotClosed as open_day:
        if not force:
            raise
        raise SecondPersonRequired(
            f"business day {day} is still open and a task cannot close it early: ask a second "
            f"finance officer with `onecard settle --date {day} --force --by <you> --reason ...`"
            " or POST /v1/approvals (kind early_settlement); once approved it is settled"
        ) from open_day
    return {
        "business_day": settlement.business_day.isoformat(),
        "already_settled": settlement.already_settled,
        "participants": len(settlement.lines),
        "net_fen": settlement.net_fen,
        "csv": str(files.csv),
        "xml": str(files.xml) if files.xml else None,
    }
