"""Insight endpoints for planners: make a release (spends privacy budget), list the budget ledger,
read a release's tables as JSON or CSV and its self-contained HTML report.

Thin: parse, check the role, call the service. Only a planner or an admin may use them; what they
return is already privacy-safe (published tables only, never a card number).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, Field

from clearing.auth.dependencies import PrincipalDep
from clearing.auth.models import Role
from clearing.auth.service import require_role
from clearing.calendar import BUSINESS_DAY_FIRST, BUSINESS_DAY_LAST
from clearing.http.bodies import JsonDate, RequestModel, StrictJsonRoute
from clearing.http.deps import SessionDep
from clearing.http.problems import PROBLEM_RESPONSES
from clearing.settlement.endpoints import DAY_PATTERN
from insight import analysis, report, service
from insight.errors import PeriodInvalid
from insight.network import Network, load_network
from insight.settings import InsightSettings

router = APIRouter(
    route_class=StrictJsonRoute, prefix="/v1/insight", tags=["insight"], responses=PROBLEM_RESPONSES
)
DAY_FIRST, DAY_LAST = BUSINESS_DAY_FIRST, BUSINESS_DAY_LAST


class TableName(StrEnum):
    LINE_DAY = "line_day"
    LINE_HOUR = "line_hour"
    STOP_HOUR = "stop_hour"
    TRANSFERS = "transfers"
    OD = "od"
    OD_OUTCOME = "od_outcome"


class ReleaseRequest(RequestModel):
    period_start: JsonDate = Field(
        description="first business day", json_schema_extra={"pattern": DAY_PATTERN}
    )
    period_end: JsonDate = Field(
        description="last business day", json_schema_extra={"pattern": DAY_PATTERN}
    )


class ReleaseSummary(BaseModel):
    id: uuid.UUID
    created_at: datetime
    created_by: str
    period_start: date
    period_end: date
    epsilon: float
    k_riders_min: int
    taps_per_rider_day_max: int


class TableOut(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    epsilon: float
    noise_scale: float
    cells_suppressed: int


class LineOutlookOut(BaseModel):
    route_id: str
    weekly_change: float
    forecast_days: list[date]
    forecast: list[int]
    mae_forecast: float | None
    mae_seasonal_naive: float | None


class ReleaseOut(ReleaseSummary):
    tables: dict[str, TableOut]
    destination_inferred_share: float | None
    lines: list[LineOutlookOut]


@lru_cache(maxsize=4)
def _network(feed_dir: str) -> Network:
    return load_network(feed_dir)


def _summary(release: service.Release) -> ReleaseSummary:
    return ReleaseSummary(
        id=release.id,
        created_at=release.created_at,
        created_by=release.created_by,
        period_start=release.period_start,
        period_end=release.period_end,
        epsilon=release.epsilon,
        k_riders_min=release.k_riders_min,
        taps_per_rider_day_max=release.taps_per_rider_day_max,
    )


def _out(release: service.Release) -> ReleaseOut:
    lines = [
        LineOutlookOut(
            route_id=o.route_id,
            weekly_change=o.weekly_change,
            forecast_days=o.forecast_days,
            forecast=o.forecast,
            mae_forecast=o.backtest.mae_forecast if o.backtest else None,
            mae_seasonal_naive=o.backtest.mae_naive if o.backtest else None,
        )
        for o in analysis.outlooks(release)
    ]
    tables = {
        name: TableOut(
            columns=list(t.columns),
            rows=t.rows,
            epsilon=t.epsilon,
            noise_scale=t.noise_scale,
            cells_suppressed=t.cells_suppressed,
        )
        for name, t in release.tables.items()
    }
    return ReleaseOut(
        **_summary(release).model_dump(),
        tables=tables,
        destination_inferred_share=analysis.inferred_share(release),
        lines=lines,
    )


@router.post("/releases", status_code=status.HTTP_201_CREATED, response_model=ReleaseOut)
async def make_release(
    body: ReleaseRequest, session: SessionDep, principal: PrincipalDep
) -> ReleaseOut:
    """Spend one release's privacy budget on the period and publish its tables."""
    require_role(principal, Role.PLANNER, Role.ADMIN)
    for day in (body.period_start, body.period_end):
        if not DAY_FIRST <= day <= DAY_LAST:
            raise PeriodInvalid(f"business days run from {DAY_FIRST} to {DAY_LAST}")
    settings = InsightSettings()
    conn = await session.connection()
    made = await service.build_release(
        conn,
        settings,
        _network(settings.feed_dir),
        body.period_start,
        body.period_end,
        created_by=f"{principal.role.value}:{principal.token_pk}",
    )
    return _out(made)


@router.get("/releases", response_model=list[ReleaseSummary])
async def list_releases(session: SessionDep, principal: PrincipalDep) -> list[ReleaseSummary]:
    """The budget ledger: every release and the epsilon it spent, newest first."""
    require_role(principal, Role.PLANNER, Role.ADMIN)
    rows = await service.budget_ledger(await session.connection())
    return [ReleaseSummary.model_validate(row) for row in rows]


async def _load(session: SessionDep, release_id: uuid.UUID) -> service.Release:
    return await service.load_release(await session.connection(), release_id)


@router.get("/releases/{release_id}", response_model=ReleaseOut)
async def get_release(
    release_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> ReleaseOut:
    """A stored release as published (reading it again spends no budget)."""
    require_role(principal, Role.PLANNER, Role.ADMIN)
    return _out(await _load(session, release_id))


@router.get(
    "/releases/{release_id}/tables/{table}.csv",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def get_table_csv(
    release_id: uuid.UUID,
    table: Annotated[TableName, Path(description="a published table")],
    session: SessionDep,
    principal: PrincipalDep,
) -> PlainTextResponse:
    """One published table of a stored release as CSV (counts already noised and thresholded)."""
    require_role(principal, Role.PLANNER, Role.ADMIN)
    found = await _load(session, release_id)
    return PlainTextResponse(report.table_csv(found, table.value), media_type="text/csv")


@router.get(
    "/releases/{release_id}/report.html",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
async def get_report(
    release_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> HTMLResponse:
    """The release's self-contained HTML report (inline SVG charts, nothing loaded from outside)."""
    require_role(principal, Role.PLANNER, Role.ADMIN)
    found = await _load(session, release_id)
    settings = InsightSettings()
    return HTMLResponse(report.render_html(found, _network(settings.feed_dir)))
