"""Settlement at the edge: the Celery task (beat runs it after the cut-off) and the helper the
command line shares with it. Thin: the rules are in clearing/settlement/service.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from clearing.celery_app import app
from clearing.settings import Settings, get_settings
from clearing.settlement.days import BusinessCalendar, parse_cutoff
from clearing.settlement.files import Debtor
from clearing.settlement.service import Settlement, SettlementFiles, settle_day, write_files
from ledger.writer import Ledger


def calendar_of(settings: Settings) -> BusinessCalendar:
    return BusinessCalendar(
        ZoneInfo(settings.business_time_zone), parse_cutoff(settings.settlement_cutoff)
    )


def debtor_of(settings: Settings) -> Debtor:
    return Debtor(settings.escrow_name, settings.escrow_account, settings.escrow_bank)


def settlement_dir(settings: Settings) -> Path:
    return settings.settlement_dir or settings.data_dir / "settlement"


async def settle(
    settings: Settings,
    business_day: date | None,
    *,
    actor: str,
    force: bool = False,
    now: datetime | None = None,
) -> tuple[Settlement, SettlementFiles]:
    """Settle a day (default: the last closed one) and write its files."""
    now = now or datetime.now(UTC)
    calendar = calendar_of(settings)
    day = business_day or calendar.last_closed_day(now)
    async with await Ledger.open(settings.resolved_database_url()) as ledger:
        async with ledger.transaction() as conn:
            settlement = await settle_day(
                conn, ledger, day, calendar=calendar, now=now, actor=actor, force=force
            )
    files = write_files(settlement, settlement_dir(settings), debtor_of(settings))
    return settlement, files


@app.task(name="clearing.settle_day", acks_late=True, reject_on_worker_lost=True)
def settle_task(business_day: str | None = None, force: bool = False) -> dict[str, Any]:
    """Settle a business day (ISO date; default the last closed day). Idempotent."""
    day = date.fromisoformat(business_day) if business_day else None
    settlement, files = asyncio.run(settle(get_settings(), day, actor="beat", force=force))
    return {
        "business_day": settlement.business_day.isoformat(),
        "already_settled": settlement.already_settled,
        "participants": len(settlement.lines),
        "net_fen": settlement.net_fen,
        "csv": str(files.csv),
        "xml": str(files.xml) if files.xml else None,
    }
