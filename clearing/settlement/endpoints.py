"""Settlement endpoints: finance staff settle a day and see every line; an operator sees only
its own line and statement; the concession report is for finance staff."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from clearing.api.bodies import StrictJsonRoute
from clearing.api.deps import SessionDep, SettingsDep
from clearing.api.errors import ClearingError, Forbidden, InvalidRequest, NotFound
from clearing.api.problems import PROBLEM_RESPONSES
from clearing.auth.dependencies import PrincipalDep
from clearing.auth.models import Role
from clearing.auth.service import Principal, require_role
from clearing.settlement import service
from clearing.settlement.days import BUSINESS_DAY_FIRST, BUSINESS_DAY_LAST
from clearing.settlement.schemas import (
    ClaimOut,
    SettlementLineOut,
    SettlementOut,
    StatementRowOut,
    SubsidyRowOut,
)

router = APIRouter(route_class=StrictJsonRoute, tags=["settlement"], responses=PROBLEM_RESPONSES)
ParticipantPath = Annotated[
    str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,31}$", description="Participant code")
]
REPORT_DAYS_MAX = 366
DAY_FIRST = BUSINESS_DAY_FIRST
DAY_LAST = BUSINESS_DAY_LAST


def _check_day(day: date) -> date:
    if not DAY_FIRST <= day <= DAY_LAST:
        raise InvalidRequest(f"business days run from {DAY_FIRST} to {DAY_LAST}")
    return day


class SettlementRefused(ClearingError):
    code = "settlement_refused"
    status = 409
    title = "The day cannot be settled now"


def _out(
    settlement: service.Settlement,
    principal: Principal,
    files: service.SettlementFiles | None = None,
) -> SettlementOut:
    lines = list(settlement.lines)
    claims = list(settlement.claims)
    if principal.role is Role.OPERATOR:
        lines = [line for line in lines if line.participant_code == principal.subject]
        claims = []
    names = []
    if files is not None:
        names = [path.name for path in (files.csv, files.xml, files.claims) if path is not None]
    return SettlementOut(
        business_day=settlement.business_day,
        created_at=settlement.created_at,
        message_id=settlement.message_id,
        already_settled=settlement.already_settled,
        lines=[SettlementLineOut.model_validate(line) for line in lines],
        claims=[ClaimOut.model_validate(claim) for claim in claims],
        files=names,
    )


@asynccontextmanager
async def _request_transaction(session: AsyncSession) -> AsyncIterator[AsyncConnection]:
    """The request's own transaction, committed on exit: the settlement is durable before its
    files are written (the session dependency's later commit then has nothing left to do)."""
    yield await session.connection()
    await session.commit()


@router.get("/v1/settlements/{business_day}", response_model=SettlementOut)
async def get_settlement(
    business_day: date, session: SessionDep, principal: PrincipalDep
) -> SettlementOut:
    """A settled day: finance and admin see every line, an operator only its own."""
    require_role(principal, Role.FINANCE, Role.ADMIN, Role.OPERATOR)
    _check_day(business_day)
    settlement = await service.load_settlement(await session.connection(), business_day)
    if settlement is None:
        raise NotFound(f"business day {business_day} is not settled")
    return _out(settlement, principal)


@router.post("/v1/settlements/{business_day}", response_model=SettlementOut)
async def settle(
    business_day: date,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    force: Annotated[
        bool, Query(description="Settle a day whose cut-off has not passed (closing early)")
    ] = False,
) -> SettlementOut:
    """Settle a closed business day and write its instruction files (CSV, pain.001, claims),
    exactly as `onecard settle` does. Idempotent: settling it again changes nothing."""
    require_role(principal, Role.FINANCE)
    _check_day(business_day)
    ledger = request.app.state.ledger
    if ledger is None:
        raise SettlementRefused("the ledger is not available")
    settlement, files = await service.settle_and_write(
        lambda: _request_transaction(session),
        ledger,
        settings,
        business_day,
        now=datetime.now(UTC),
        actor=principal.actor,
        force=force,
    )
    return _out(settlement, principal, files)


@router.get(
    "/v1/settlements/{business_day}/statements/{participant}",
    response_model=list[StatementRowOut],
)
async def statement(
    business_day: date, participant: ParticipantPath, session: SessionDep, principal: PrincipalDep
) -> list[StatementRowOut]:
    """What was cleared for a participant on a settlement day, per line and terminal."""
    require_role(principal, Role.FINANCE, Role.ADMIN, Role.OPERATOR)
    _check_day(business_day)
    if principal.role is Role.OPERATOR and principal.subject != participant:
        raise Forbidden("an operator sees only its own statement")
    rows = await service.operator_statement(await session.connection(), participant, business_day)
    return [StatementRowOut.model_validate(row) for row in rows]


@router.get("/v1/subsidies", response_model=list[SubsidyRowOut])
async def subsidies(
    session: SessionDep,
    principal: PrincipalDep,
    first_day: Annotated[date, Query(alias="from")],
    last_day: Annotated[date | None, Query(alias="to")] = None,
) -> list[SubsidyRowOut]:
    """Concession claims (full fare - charged) per operator, line and day."""
    require_role(principal, Role.FINANCE, Role.ADMIN)
    last = _check_day(last_day or first_day)
    _check_day(first_day)
    if last < first_day or last - first_day > timedelta(days=REPORT_DAYS_MAX):
        raise InvalidRequest(f"the range must run forwards and span at most {REPORT_DAYS_MAX} days")
    rows = await service.subsidy_report(await session.connection(), first_day, last)
    return [SubsidyRowOut.model_validate(row) for row in rows]
