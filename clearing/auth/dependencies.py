"""FastAPI dependencies that say who is calling: a bearer-token principal or a signing terminal
(RFC 9421 HTTP Message Signatures, docs/terminal-protocol.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from clearing.auth import service
from clearing.auth.service import Principal
from clearing.auth.signing import SignedRequest
from clearing.errors import Forbidden
from clearing.http.deps import SessionDep
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


def _url_as_sent(request: Request) -> str:
    """The absolute URL with the path and query exactly as sent: what the terminal signed."""
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    host = request.headers.get("host") or "localhost"
    return f"{request.url.scheme}://{host}{path}" + (f"?{query}" if query else "")


async def _signing_terminal(
    request: Request,
    session: SessionDep,
    terminal_id: TerminalIdPath,
    onecard_terminal_id: Annotated[
        str | None, Header(description="The terminal id; equals the signature's keyid")
    ] = None,
    signature_input: Annotated[
        str | None,
        Header(description="RFC 9421 Signature-Input (docs/terminal-protocol.md)"),
    ] = None,
    signature: Annotated[
        str | None, Header(description="RFC 9421 Signature: Ed25519, base64 Byte Sequence")
    ] = None,
    content_digest: Annotated[
        str | None, Header(description="RFC 9530 Content-Digest (sha-256) of a request body")
    ] = None,
) -> Terminal:
    """The active terminal that signed this request for its own path; 401 or 403 if not.

    The declared headers document the protocol in the OpenAPI schema; verification reads every
    field line as received, since a terminal may cover more than the required components.
    """
    body = await request.body()
    signed = SignedRequest.of(
        request.method,
        _url_as_sent(request),
        ((name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw),
        body,
    )
    terminal = await service.authenticate_terminal(session, signed)
    if terminal.terminal_id != terminal_id:
        raise Forbidden(f"terminal {terminal.terminal_id} may not act for terminal {terminal_id}")
    return terminal


SigningTerminalDep = Annotated[Terminal, Depends(_signing_terminal)]
