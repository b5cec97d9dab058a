"""The terminal a request comes from: its RFC 9421 signature (HTTP Message Signatures, Ed25519)
checked against the key the registry holds for it (docs/terminal-protocol.md).

A terminal request is accepted only with a signature created within the window, covering what
it must, by an active terminal's key, over a body that matches its Content-Digest, with a nonce
never seen before; the nonce is stored in the caller's transaction, so a refused request leaves
nothing behind. Never commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.auth import repository as auth_repository
from clearing.auth.dependencies import TerminalIdPath
from clearing.auth.service import NONCE_RETENTION
from clearing.auth.signing import (
    KeyUnknown,
    NonceReplayed,
    SignedRequest,
    check_content_digest,
    check_covered,
    check_created,
    check_keyid,
    parse_signature_input,
    verify_signature,
)
from clearing.db.base import utc_now
from clearing.errors import Forbidden
from clearing.http.deps import SessionDep
from clearing.registry import repository
from clearing.registry.models import Terminal, TerminalStatus


async def authenticate_terminal(
    session: AsyncSession, request: SignedRequest, *, now: datetime | None = None
) -> Terminal:
    """The terminal that signed this request; Unauthenticated (401) or Forbidden (403) if not.

    Each check raises its own 401 problem, in this order: the signature headers are there and
    readable, keyid is the terminal id, the required components are covered, `created` is
    within the window, the body matches Content-Digest, the key is registered, the signature
    verifies, then (403) the terminal is active, then the nonce is new.
    """
    now = now or utc_now()
    signed = parse_signature_input(request)
    check_keyid(signed)
    check_covered(signed, request)
    check_created(signed, int(now.timestamp()))
    check_content_digest(request)
    terminal = await repository.terminal_by_id(session, signed.keyid)
    if terminal is None:
        raise KeyUnknown(f"no terminal {signed.keyid} is registered: ask for it to be enrolled")
    verify_signature(request, signed, terminal.public_key)
    if terminal.status is not TerminalStatus.ACTIVE:
        raise Forbidden(f"terminal {terminal.terminal_id} is {terminal.status.value}")
    if not await auth_repository.remember_nonce(session, terminal.terminal_id, signed.nonce, now):
        raise NonceReplayed(
            f"nonce {signed.nonce!r} was already used within {NONCE_RETENTION.seconds} s: "
            "a replayed request (use a new nonce for every request)"
        )
    await auth_repository.forget_nonces_before(session, terminal.terminal_id, now - NONCE_RETENTION)
    return terminal


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
    terminal = await authenticate_terminal(session, signed)
    if terminal.terminal_id != terminal_id:
        raise Forbidden(f"terminal {terminal.terminal_id} may not act for terminal {terminal_id}")
    return terminal


SigningTerminalDep = Annotated[Terminal, Depends(_signing_terminal)]
