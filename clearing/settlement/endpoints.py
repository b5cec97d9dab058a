"""Settlement endpoints: finance staff settle a day and see every line; an operator sees only
its own line and statement; the concession report is for finance staff."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from clearing.auth.dependencies import PrincipalDep
from clearing.auth.models import Role
from clearing.auth.service import Principal, require_role
from clearing.calendar import BUSINESS_DAY_FIRST, BUSINESS_DAY_LAST
from clearing.errors import (
    ClearingError,
    Forbidden,
    InvalidRequest,
    NotFound,
    SecondPersonRequired,
)
from clearing.http.bodies import StrictJsonRoute
from clearing.http.deps import SessionDep, SettingsDep
from clearing.http.problems import PROBLEM_RESPONSES
from clearing.registry import service as registry_service
from clearing.settlement import service
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

# The business days anyone may name (DAY_FIRST..DAY_LAST), as a pattern the schema states: only
# real dates (months of 30 and 31 days, February's 28, the 29th in leap years: every fourth year
# from 2000, which is one, to 2096; 2100 is not).
_YEAR = r"(?:20[0-9]{2}|2100)"
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_LEAP_DAY = r"20(?:[02468][048]|[13579][26])-02-29"
DAY_PATTERN = rf"^(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_DAY})$"
DAY_SCHEMA = {"pattern": DAY_PATTERN, "description": f"A business day, {DAY_FIRST} to {DAY_LAST}"}
DayPath = Annotated[date, Path(json_schema_extra=DAY_SCHEMA)]


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


@router.get(
    "/v1/settlements/{business_day}",
    response_model=SettlementOut,
    summary="A settled business day",
    description="The settlement of a day that was settled: participants' lines (gross, "
    "commission, net to pay) and the claims on the insurance and subsidy funds. Finance and "
    "admin see every line, an operator only its own and no claims. 404 if the day is not settled.",
)
async def get_settlement(
    business_day: DayPath, session: SessionDep, principal: PrincipalDep
) -> SettlementOut:
    require_role(principal, Role.FINANCE, Role.ADMIN, Role.OPERATOR)
    _check_day(business_day)
    settlement = await service.load_settlement(await session.connection(), business_day)
    if settlement is None:
        raise NotFound(f"business day {business_day} is not settled")
    return _out(settlement, principal)


@router.post(
    "/v1/settlements/{business_day}",
    response_model=SettlementOut,
    summary="Settle a business day (finance)",
    description="Settle a closed business day and write its instruction files (CSV, pain.001, "
    "claims), exactly as `onecard settle` does. Idempotent: settling it again changes nothing "
    "and answers the same settlement (`already_settled`). A day whose cut-off has not passed is "
    "refused (409); closing it early (`force`) needs a second finance officer: 409 "
    "second_person_required, ask with POST /v1/approvals (kind early_settlement).",
)
async def settle(
    business_day: DayPath,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    force: Annotated[
        bool,
        Query(description="Close the current business day before its cut-off (never a later one)"),
    ] = False,
) -> SettlementOut:
    require_role(principal, Role.FINANCE)
    _check_day(business_day)
    now = datetime.now(UTC)
    calendar = service.calendar_of(settings)
    # a later day is refused below as not begun, `force` or not
    if (
        force
        and business_day <= calendar.business_day(now)
        and not calendar.is_closed(business_day, now)
    ):
        raise SecondPersonRequired(
            "settling a day before its cut-off needs a second finance officer: ask with POST "
            f'/v1/approvals {{"kind": "early_settlement", "target": "{business_day}", '
            '"reason": ...}'
        )
    ledger = request.app.state.ledger
    if ledger is None:
        raise SettlementRefused("the ledger is not available")
    settlement, files = await service.settle_and_write(
        lambda: _request_transaction(session),
        ledger,
        settings,
        business_day,
        now=now,
        actor=principal.actor,
    )
    return _out(settlement, principal, files)


@router.get(
    "/v1/settlements/{business_day}/statements/{participant}",
    response_model=list[StatementRowOut],
    summary="A participant's statement for a settlement day",
    description="What was cleared for a participant on a settlement day, per line and "
    "terminal (taps, fares, subsidy, insured share). An operator sees only its own; a "
    "participant the registry does not know is 404 (never an empty statement).",
)
async def statement(
    business_day: DayPath,
    participant: ParticipantPath,
    session: SessionDep,
    principal: PrincipalDep,
) -> list[StatementRowOut]:
    require_role(principal, Role.FINANCE, Role.ADMIN, Role.OPERATOR)
    _check_day(business_day)
    if principal.role is Role.OPERATOR and principal.subject != participant:
        raise Forbidden("an operator sees only its own statement")
    await registry_service.get_participant(session, principal, participant)
    rows = await service.operator_statement(await session.connection(), participant, business_day)
    return [StatementRowOut.model_validate(row) for row in rows]


@router.get(
    "/v1/subsidies",
    response_model=list[SubsidyRowOut],
    summary="Concession claims per operator, line and day",
    description="What the social-security and civil-affairs funds owe for concession rides "
    "(full fare minus what the rider paid), per operator, line and business day, from `from` "
    f"to `to` (both included; `to` defaults to `from`). One answer covers at most "
    f"{REPORT_DAYS_MAX} days: for a longer range the `Link` header (rel=next) names the rest. A "
    "range that ends before it starts holds no day: an empty list.",
    responses={
        200: {
            "headers": {
                "Link": {
                    "description": "rel=next: the rest of a range longer than one answer covers",
                    "schema": {"type": "string"},
                }
            }
        }
    },
)
async def subsidies(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    first_day: Annotated[date, Query(alias="from", json_schema_extra=DAY_SCHEMA)],
    last_day: Annotated[date | None, Query(alias="to", json_schema_extra=DAY_SCHEMA)] = None,
) -> list[SubsidyRowOut]:
    require_role(principal, Role.FINANCE, Role.ADMIN)
    last = _check_day(last_day or first_day)
    _check_day(first_day)
    if last < first_day:
        return []
    window_last = first_day + timedelta(days=REPORT_DAYS_MAX - 1)
    if last > window_last:
        rest = request.url.include_query_params(
            **{"from": str(window_last + timedelta(days=1)), "to": str(last)}
        )
        response.headers["Link"] = f'<{rest.path}?{rest.query}>; rel="next"'
        last = window_last
    rows = await service.subsidy_report(await session.connection(), first_day, last)
    return [SubsidyRowOut.model_validate(row) for row in rows]
