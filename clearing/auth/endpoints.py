"""Who am I: the caller's role and subject, for clients to check a token."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from clearing.auth.dependencies import PrincipalDep
from clearing.auth.models import Role
from clearing.http.bodies import StrictJsonRoute
from clearing.http.problems import PROBLEM_RESPONSES

router = APIRouter(
    route_class=StrictJsonRoute, prefix="/v1", tags=["auth"], responses=PROBLEM_RESPONSES
)


class Me(BaseModel):
    role: Role
    subject: str | None


@router.get(
    "/me",
    summary="The caller's role and subject",
    description="Who the bearer token names: its role (admin, finance, operator, resident) and subject (a participant code or a resident's id). A client checks its token with it.",
)
async def me(principal: PrincipalDep) -> Me:
    return Me(role=principal.role, subject=principal.subject)
