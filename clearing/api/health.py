"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: it can do its work)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from clearing.http.bodies import StrictJsonRoute
from clearing.http.problems import problem_response

router = APIRouter(route_class=StrictJsonRoute, tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    database: str
    schema_revision: str | None
    ledger: bool


@router.get(
    "/healthz",
    summary="Liveness: the process answers",
    description="200 as long as the process serves requests; checks nothing else (use /readyz for that).",
)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: the database answers and its schema is migrated",
    description="200 when the database answers and its schema is at a migrated revision, with that revision and whether the ledger is open; 503 (problem) otherwise.",
    response_model=Readiness,
    responses={503: {"description": "Not ready (problem body)"}},
)
async def readyz(request: Request) -> Readiness | JSONResponse:
    engine = request.app.state.engine
    try:
        async with engine.connect() as connection:
            revision = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar_one_or_none()
    except SQLAlchemyError as error:
        return problem_response(
            503,
            "database_unavailable",
            "Not ready",
            f"database check failed: {type(error).__name__}",
        )
    if revision is None:
        return problem_response(
            503, "schema_not_migrated", "Not ready", "run `onecard db upgrade` first"
        )
    return Readiness(
        status="ready",
        database=engine.dialect.name,
        schema_revision=revision,
        ledger=request.app.state.ledger is not None,
    )
