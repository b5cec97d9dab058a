"""FastAPI dependencies that say who is calling with a bearer token (staff and residents).

A signing terminal is the registry's to check (clearing/registry/signed.py): it knows the keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from clearing.auth import service
from clearing.auth.service import Principal
from clearing.http.deps import SessionDep

_bearer = HTTPBearer(auto_error=False, description="A token issued by `onecard registry token`")

TerminalIdPath = Annotated[
    str,
    Path(pattern=r"^[0-9A-F]{12}$", description="Terminal id: the SAM number, 12 hex digits"),
]


async def _principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    return await service.authenticate_bearer(session, header)


PrincipalDep = Annotated[Principal, Depends(_principal)]
