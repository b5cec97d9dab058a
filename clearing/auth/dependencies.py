"""FastAPI dependencies that say who is calling: a bearer-token principal or a signing terminal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from clearing.api.deps import SessionDep
from clearing.api.errors import Forbidden
from clearing.auth import service
from clearing.auth.service import Principal
from clearing.registry.models import Terminal

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


def _path_with_query(request: Request) -> str:
    """The path and query exactly as sent: what the terminal signed."""
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


async def _signing_terminal(
    request: Request,
    session: SessionDep,
    terminal_id: TerminalIdPath,
    x_onecard_terminal: Annotated[str | None, Header(description="Terminal id")] = None,
    x_onecard_timestamp: Annotated[str | None, Header(description="Unix seconds")] = None,
    x_onecard_nonce: Annotated[
        str | None, Header(description="32 hex digits, never reused")
    ] = None,
    x_onecard_signature: Annotated[
        str | None, Header(description="Ed25519 signature, hex (docs/terminal-protocol.md)")
    ] = None,
) -> Terminal:
    body = await request.body()
    terminal = await service.authenticate_terminal(
        session,
        method=request.method,
        path_with_query=_path_with_query(request),
        headers={
            "X-Onecard-Terminal": x_onecard_terminal,
            "X-Onecard-Timestamp": x_onecard_timestamp,
            "X-Onecard-Nonce": x_onecard_nonce,
            "X-Onecard-Signature": x_onecard_signature,
        },
        body=body,
    )
    if terminal.terminal_id != terminal_id:
        raise Forbidden(f"terminal {terminal.terminal_id} may not act for terminal {terminal_id}")
    return terminal


SigningTerminalDep = Annotated[Terminal, Depends(_signing_terminal)]
