"""Split a clinic visit between the insurance fund and the patient, and record the split.

The recorded split is what the clinic's tap record is checked against at clearing (the card
pays `patient_fen`; `insured_fen` becomes a claim on `insurer:<scheme>`), and what the annual
deductible and cap are counted from. Same visit asked twice: the same answer. Never commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.clinic.adapter import InsuranceAdapter, Visit
from clearing.clinic.models import ClinicSplit
from clearing.clinic.rules import Split, YearToDate
from clearing.db.base import utc_now
from clearing.errors import Conflict, Forbidden, InvalidRequest, NotFound
from clearing.registry.models import Card, CardStatus, Participant, Terminal

splits = cast(Table, ClinicSplit.__table__)
cards = cast(Table, Card.__table__)
BENEFIT_YEAR_ZONE = ZoneInfo("Asia/Shanghai")
# A clinic terminal asks at the visit; a day or two of an offline clock is tolerated.
VISIT_SKEW_MAX = timedelta(days=7)


class VisitConflict(Conflict):
    code = "visit_conflict"
    title = "The visit was already split with another card or bill"


class CardNotUsable(Conflict):
    code = "card_not_usable"
    title = "The card cannot pay"


async def split_visit(
    conn: AsyncConnection,
    adapter: InsuranceAdapter,
    terminal: Terminal,
    *,
    visit_id: str,
    card_no: str,
    bill_fen: int,
    visit_at: datetime,
) -> Split:
    now = utc_now()
    if abs(visit_at - now) > VISIT_SKEW_MAX:
        raise InvalidRequest(
            f"visit_at must be within {VISIT_SKEW_MAX.days} days of now: the split is asked "
            "for at the visit"
        )
    if str(terminal.kind) != "clinic":
        raise Forbidden(f"terminal {terminal.terminal_id} is not a clinic terminal")
    participant_code = (
        await conn.execute(
            select(Participant.__table__.c.code).where(
                Participant.__table__.c.id == terminal.participant_id
            )
        )
    ).scalar_one()
    query = select(cards.c.card_no, cards.c.status, cards.c.scheme).where(
        cards.c.card_no == card_no
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()  # one split at a time per card: the cap holds
    card = (await conn.execute(query)).first()
    if card is None:
        raise NotFound(f"no card {card_no}")
    existing = (
        await conn.execute(
            select(splits).where(
                splits.c.participant_code == participant_code, splits.c.visit_id == visit_id
            )
        )
    ).first()
    if existing is not None:
        if existing.card_no != card_no or existing.bill_fen != bill_fen:
            raise VisitConflict(f"visit {visit_id} was split for another card or bill")
        return Split(
            existing.scheme,
            existing.bill_fen,
            existing.deductible_fen,
            existing.insured_fen,
            existing.patient_fen,
            existing.rule,
        )
    if str(card.status) != CardStatus.ACTIVE:
        raise CardNotUsable(f"card {card_no} is {card.status}")
    year = visit_at.astimezone(BENEFIT_YEAR_ZONE).year
    ytd_row = (
        await conn.execute(
            select(
                func.coalesce(func.sum(splits.c.deductible_fen), 0),
                func.coalesce(func.sum(splits.c.insured_fen), 0),
            ).where(
                splits.c.card_no == card_no,
                splits.c.scheme == card.scheme,
                splits.c.benefit_year == year,
            )
        )
    ).one()
    split = await adapter.split(
        Visit(visit_id, card_no, card.scheme, bill_fen, visit_at),
        YearToDate(int(ytd_row[0]), int(ytd_row[1])),
    )
    if (
        split.insured_fen + split.patient_fen != bill_fen
        or min(split.insured_fen, split.patient_fen) < 0
    ):
        raise RuntimeError(f"adapter {adapter.name} broke the split invariant")
    await conn.execute(
        insert(splits).values(
            participant_code=participant_code,
            visit_id=visit_id,
            terminal_id=terminal.terminal_id,
            card_no=card_no,
            scheme=split.scheme,
            bill_fen=bill_fen,
            deductible_fen=split.deductible_fen,
            insured_fen=split.insured_fen,
            patient_fen=split.patient_fen,
            rule=split.rule[:200],
            adapter=adapter.name,
            visit_at=visit_at,
            benefit_year=year,
            decided_at=utc_now(),
        )
    )
    return split
