"""Who is calling: staff and residents by bearer token, with the roles that allow what.

Tokens are random (256 bits), shown once at issue and stored only as SHA-256. Terminals sign
their requests instead (RFC 9421, clearing/auth/signing.py); the registry, which holds their
keys, checks them (clearing/registry/signed.py) and stores the nonces here. Never commits.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from clearing.auth import repository
from clearing.auth.models import ApiToken, Role
from clearing.auth.signing import TIMESTAMP_SKEW_S_MAX
from clearing.db.base import utc_now
from clearing.errors import Forbidden, InvalidRequest, NotFound, Unauthenticated

TOKEN_PREFIX = "oc_"
TOKEN_BYTES = 32
TOKEN_LENGTH_MAX = 128
NONCE_RETENTION = timedelta(seconds=2 * TIMESTAMP_SKEW_S_MAX)


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified staff member or resident. `subject`: participant code (operator), resident id,
    staff username. A staff member signed in with a password (clearing/staff) may hold more
    roles than `role`, their first: `roles` names all of them (a token has exactly one)."""

    token_pk: int
    role: Role
    subject: str | None
    participant_id: int | None
    roles: frozenset[Role] = frozenset()

    @property
    def actor(self) -> str:
        return f"{self.role.value}:{self.subject or self.token_pk}"

    def has_role(self, *roles: Role) -> bool:
        return self.role in roles or any(role in self.roles for role in roles)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def issue_token(
    session: AsyncSession,
    role: Role,
    *,
    subject: str | None,
    label: str,
    expires_at: datetime | None = None,
    participant_id: int | None = None,
) -> tuple[str, ApiToken]:
    """A new random token (returned once, in clear) and its stored, hashed row.

    An operator token names its participant's code and carries that participant's id (the
    registry's `issue_token` looks it up); a resident token names the resident id that cards
    carry as `holder_id`.
    """
    if role is Role.OPERATOR:
        if not subject:
            raise InvalidRequest("an operator token needs the participant code as its subject")
        if participant_id is None:
            raise InvalidRequest(f"an operator token needs participant {subject!r}'s id")
    elif role is Role.RESIDENT and not subject:
        raise InvalidRequest("a resident token needs the resident id as its subject")
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    row = ApiToken(
        token_sha256=hash_token(token),
        role=role,
        subject=subject,
        participant_id=participant_id if role is Role.OPERATOR else None,
        label=label,
        created_at=utc_now(),
        expires_at=expires_at,
        revoked_at=None,
    )
    session.add(row)
    await session.flush()
    return token, row


async def revoke_token(session: AsyncSession, token_pk: int) -> ApiToken:
    row = await repository.token_by_id(session, token_pk)
    if row is None:
        raise NotFound(f"no token {token_pk}")
    if row.revoked_at is None:
        row.revoked_at = utc_now()
        await session.flush()
    return row


async def list_tokens(session: AsyncSession) -> list[ApiToken]:
    return await repository.list_tokens(session)


async def authenticate_bearer(session: AsyncSession, authorization: str | None) -> Principal:
    """The principal of an `Authorization: Bearer <token>` header, or Unauthenticated."""
    if not authorization:
        raise Unauthenticated("send `Authorization: Bearer <token>`")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > TOKEN_LENGTH_MAX:
        raise Unauthenticated("send `Authorization: Bearer <token>`")
    return _live(await repository.token_by_hash(session, hash_token(token)))


async def principal_of_token(session: AsyncSession, token_pk: int) -> Principal:
    """The principal of the stored token `token_pk` (for a caller that holds its id, not the
    token itself), or Unauthenticated if it is revoked or expired."""
    return _live(await repository.token_by_id(session, token_pk))


def _live(row: ApiToken | None) -> Principal:
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("the token is unknown or revoked")
    if row.expires_at is not None and row.expires_at <= utc_now():
        raise Unauthenticated("the token has expired")
    return Principal(row.id, row.role, row.subject, row.participant_id)


def require_role(principal: Principal, *roles: Role) -> None:
    if not principal.has_role(*roles):
        allowed = ", ".join(role.value for role in roles)
        raise Forbidden(f"this needs one of the roles: {allowed}")
