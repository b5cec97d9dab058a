"""Deny list and action list for terminals (signed deltas), the public key, fleet coverage."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from clearing.auth.dependencies import PrincipalDep, TerminalIdPath
from clearing.auth.models import Role
from clearing.auth.service import require_role
from clearing.http.bodies import StrictJsonRoute
from clearing.http.deps import SessionDep
from clearing.http.problems import PROBLEM_RESPONSES
from clearing.lists import service
from clearing.lists.models import ListKind
from clearing.lists.signing import public_key_hex
from clearing.registry.signed import SigningTerminalDep

router = APIRouter(
    route_class=StrictJsonRoute, prefix="/v1", tags=["lists"], responses=PROBLEM_RESPONSES
)

SinceQuery = Annotated[
    int, Query(ge=0, le=2**62, description="The version the terminal holds (0: whole list)")
]


class ListDelta(BaseModel):
    """The signed body exactly as the protocol names its fields (`list` is an alias)."""

    model_config = ConfigDict(populate_by_name=True)

    list_kind: ListKind = Field(alias="list")
    since: int
    version: int
    added: list[Any]
    removed: list[str]
    full: bool
    signed_at: str
    signature: str


class PublicKey(BaseModel):
    public_key: str


class CoverageOut(BaseModel):
    version: int
    created_at: datetime | None
    terminals_active: int
    terminals_reached: int
    reached_all_at: datetime | None
    seconds_to_fleet: float | None
    terminals_behind: list[str]


@router.get(
    "/terminals/{terminal_id}/deny-list",
    summary="Deny list delta (signed)",
    description="Terminal-signed: the deny list since the version the terminal holds (or the whole list), signed by the server's list key so the terminal can verify it offline.",
)
async def deny_list(
    terminal_id: TerminalIdPath,
    request: Request,
    terminal: SigningTerminalDep,
    session: SessionDep,
    since: SinceQuery = 0,
) -> ListDelta:
    body = await service.signed_delta(
        session,
        request.app.state.list_key,
        kind=ListKind.DENY,
        terminal_id=terminal.terminal_id,
        since=since,
    )
    return ListDelta.model_validate(body)


@router.get(
    "/terminals/{terminal_id}/action-list",
    summary="Action list delta (signed)",
    description="Terminal-signed: pending card actions (loads to write onto cards, replacements) since the version the terminal holds, signed like the deny list.",
)
async def action_list(
    terminal_id: TerminalIdPath,
    request: Request,
    terminal: SigningTerminalDep,
    session: SessionDep,
    since: SinceQuery = 0,
) -> ListDelta:
    body = await service.signed_delta(
        session,
        request.app.state.list_key,
        kind=ListKind.ACTION,
        terminal_id=terminal.terminal_id,
        since=since,
    )
    return ListDelta.model_validate(body)


@router.get(
    "/lists/public-key",
    summary="The server's list-signing public key",
    description="The Ed25519 public key that verifies deny and action lists (hex). Public: terminals pin it at installation.",
)
async def public_key(request: Request) -> PublicKey:
    return PublicKey(public_key=public_key_hex(request.app.state.list_key))


@router.get(
    "/lists/deny/coverage",
    summary="How far a deny-list version has reached the fleet",
    description="Admin and finance: for a deny-list version (default the latest), how many active terminals hold it, when the last one got it and which are behind.",
)
async def deny_coverage(
    principal: PrincipalDep,
    session: SessionDep,
    version: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> CoverageOut:
    require_role(principal, Role.ADMIN, Role.FINANCE)
    coverage = await service.deny_list_coverage(session, version)
    return CoverageOut(
        version=coverage.version,
        created_at=coverage.created_at,
        terminals_active=coverage.terminals_active,
        terminals_reached=coverage.terminals_reached,
        reached_all_at=coverage.reached_all_at,
        seconds_to_fleet=coverage.seconds_to_fleet,
        terminals_behind=list(coverage.terminals_behind),
    )
