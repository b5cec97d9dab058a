"""FastAPI dependency naming the signed-in resident: `CurrentResident`.

No token, an unknown, expired or revoked one: 401 (clearing/auth). A valid token that is not a
resident's (staff), or a resident token naming no account: 403 not_a_resident."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from clearing.auth.dependencies import PrincipalDep
from clearing.auth.models import Role
from clearing.http.deps import SessionDep
from clearing.residents import repository
from clearing.residents.errors import NotAResident
from clearing.residents.service import ResidentPrincipal


async def _current_resident(principal: PrincipalDep, session: SessionDep) -> ResidentPrincipal:
    if principal.role is not Role.RESIDENT or not principal.subject:
        raise NotAResident(
            "this needs a resident's access token (POST /v1/auth/login); staff tokens are not "
            "residents"
        )
    if await repository.resident_by_id(session, principal.subject) is None:
        raise NotAResident(
            "this resident token names no account: sign up (POST /v1/residents), then log in"
        )
    return ResidentPrincipal(principal.subject, principal.token_pk, principal)


CurrentResident = Annotated[ResidentPrincipal, Depends(_current_resident)]
