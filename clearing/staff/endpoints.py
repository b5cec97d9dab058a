"""Staff sign-in over the API: a finance officer's, an administrator's or a planner's client
trades a username and password for a bearer token, as the console does for its pages, and ends
it. Thin: parse, call the service, answer.

A wrong password is committed before the error leaves (it counts towards the account's limit;
the session dependency would roll it back otherwise).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from clearing.auth.dependencies import PrincipalDep
from clearing.auth.models import Role
from clearing.auth.service import require_role
from clearing.http.bodies import JSON_ENUM, RequestModel, StrictJsonRoute, omittable
from clearing.http.deps import SessionDep, SettingsDep
from clearing.http.problems import PROBLEM_RESPONSES, TOO_MANY_RESPONSES
from clearing.staff import service
from clearing.staff.errors import StaffSignInFailed
from clearing.staff.repository import STAFF_ROLES

router = APIRouter(
    route_class=StrictJsonRoute,
    prefix="/v1/staff",
    tags=["staff"],
    responses={**PROBLEM_RESPONSES},
)


# The roles a staff account may hold (clearing.staff.repository.STAFF_ROLES), as the body's enum.
StaffRole = enum.StrEnum("StaffRole", {r.name: r.value for r in STAFF_ROLES})  # type: ignore[misc]


class StaffSignInIn(RequestModel):
    username: str = Field(min_length=1, max_length=64, description="The staff username")
    password: str = Field(min_length=1, max_length=service.PASSWORD_LENGTH_MAX)
    role: Annotated[StaffRole, JSON_ENUM] = omittable(
        description="The role the token acts in: one the account holds (default: its first, "
        "finance before admin before planner). A token has one role."
    )


class StaffSessionOut(BaseModel):
    access_token: str = Field(description="Send it as `Authorization: Bearer <token>`; shown once")
    token_type: str = Field(description="Always bearer")
    expires_at: datetime = Field(description="The token works until then (8 hours)")
    username: str
    role: Role = Field(description="The role the token acts in")
    roles: list[Role] = Field(description="Every role the account holds")


@router.post(
    "/sessions",
    status_code=201,
    summary="Sign in (staff)",
    description="A bearer token for a staff account (`onecard staff add`), living 8 hours, in "
    "one of the account's roles. A wrong username or password is 401 (the same answer for "
    "both); after too many wrong passwords for one account, 429 with Retry-After; a role the "
    "account does not hold, 403. Disabling the account (`onecard staff disable`) revokes its "
    "tokens.",
    responses=TOO_MANY_RESPONSES,
)
async def sign_in(
    body: StaffSignInIn, session: SessionDep, settings: SettingsDep
) -> StaffSessionOut:
    try:
        signed = await service.sign_in(
            session,
            settings,
            body.username,
            body.password,
            label=service.API_LABEL,
            role=Role(body.role.value) if body.role is not None else None,
        )
    except StaffSignInFailed:
        await session.commit()  # the wrong password counts towards the limit
        raise
    principal = signed.principal
    return StaffSessionOut(
        access_token=signed.token,
        token_type="bearer",
        expires_at=signed.expires_at,
        username=principal.subject or "",
        role=principal.role,
        roles=[r for r in STAFF_ROLES if r in principal.roles],
    )


@router.delete(
    "/sessions/current",
    status_code=204,
    summary="Sign out (staff)",
    description="Revokes the bearer token this request carries, which a sign-in gave: it no "
    "longer works. A token an administrator issued (`onecard registry token issue`) is not "
    "ended here (409 not_a_sign_in): an administrator revokes it.",
)
async def sign_out(principal: PrincipalDep, session: SessionDep) -> Response:
    require_role(principal, *STAFF_ROLES)
    await service.sign_out_bearer(session, principal)
    return Response(status_code=204)
