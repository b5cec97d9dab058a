"""Residents' accounts and sign-ins: sign-up, login, refresh (rotating, one use), logout.

An access token is the back office's own bearer token (clearing/auth: random, stored hashed,
with `expires_at`), role resident, subject the resident id; it lives minutes. A refresh token
lives weeks and is used once: each use gives a new pair in the same family. A refresh token
used twice means it was copied: the whole family (its access tokens too) is revoked, except
within the grace a web renewal gives it (REFRESH_GRACE_S, closed as soon as the new pair is
seen): a browser's parallel page loads all present the same expired sign-in at once.
Wrong passwords are counted per account (a sliding window, rules.retry_after_s). Never commits.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.auth import service as auth_service
from clearing.auth.models import Role
from clearing.db.base import utc_now
from clearing.errors import Unauthenticated
from clearing.residents import passwords, repository, rules
from clearing.residents.errors import (
    LoginFailed,
    LoginInvalid,
    LoginLocked,
    LoginTaken,
    PasswordRefused,
    RefreshRaced,
    RefreshRefused,
    RefreshReused,
)
from clearing.residents.models import AttemptKind, FailedAttempt, RefreshToken, Resident
from clearing.settings import Settings

REFRESH_PREFIX = "ocr_"
REFRESH_BYTES = 32
RESIDENT_ID_PREFIX = "res_"
ACCESS_LABEL = "resident sign-in"
# How long after a web renewal a parallel page load of the same browser may still present the
# used refresh token (it rides on that renewal: no new pair). Page loads a browser starts
# together reach the server within this; a copy used later revokes the sign-in as before.
REFRESH_GRACE_S = 10


@dataclass(frozen=True, slots=True)
class TokenPair:
    resident_id: str
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def normalised_login(text: str) -> rules.Login:
    try:
        return rules.normalise_login(text)
    except rules.LoginInvalid as error:
        raise LoginInvalid(str(error)) from None


async def sign_up(
    session: AsyncSession,
    settings: Settings,
    login_text: str,
    password: str,
    display_name: str | None,
) -> Resident:
    """A new account; LoginTaken if the (normalised) login has one already."""
    login = normalised_login(login_text)
    problem = rules.password_problem(password, login.value)
    if problem is not None:
        raise PasswordRefused(problem)
    if await repository.resident_by_login(session, login.value) is not None:
        raise LoginTaken(f"{login.value} already has an account: log in with it")
    resident = Resident(
        id=RESIDENT_ID_PREFIX + secrets.token_hex(8),
        login=login.value,
        login_kind=login.kind,
        display_name=display_name,
        password_hash=await passwords.hash_password(settings, password),
        created_at=utc_now(),
        last_login_at=None,
    )
    session.add(resident)
    try:
        await session.flush()
    except IntegrityError:
        # the same login signed up by a concurrent request that committed first
        raise LoginTaken(f"{login.value} already has an account: log in with it") from None
    return resident


async def _issue_pair(
    session: AsyncSession, settings: Settings, resident_id: str, family_id: str
) -> TokenPair:
    now = utc_now()
    access_expires_at = now + timedelta(seconds=settings.resident_access_token_ttl_s)
    access, access_row = await auth_service.issue_token(
        session,
        Role.RESIDENT,
        subject=resident_id,
        label=ACCESS_LABEL,
        expires_at=access_expires_at,
    )
    refresh = REFRESH_PREFIX + secrets.token_urlsafe(REFRESH_BYTES)
    refresh_expires_at = now + timedelta(seconds=settings.resident_refresh_token_ttl_s)
    session.add(
        RefreshToken(
            resident_id=resident_id,
            family_id=family_id,
            token_sha256=_sha256(refresh),
            access_token_id=access_row.id,
            issued_at=now,
            expires_at=refresh_expires_at,
            used_at=None,
            revoked_at=None,
        )
    )
    await session.flush()
    return TokenPair(resident_id, access, access_expires_at, refresh, refresh_expires_at)


def password_limit(settings: Settings) -> rules.PasswordLimit:
    """Residents' limit on wrong passwords (staff sign-ins keep it too)."""
    return rules.PasswordLimit(
        settings.resident_login_failures_max, timedelta(seconds=settings.resident_login_window_s)
    )


async def _login_wait_s(
    session: AsyncSession, limit: rules.PasswordLimit, resident: Resident
) -> int | None:
    now = utc_now()
    since = limit.counted_since(now, resident.last_login_at)
    failures = await repository.failures_since(
        session, AttemptKind.LOGIN, since, resident_id=resident.id
    )
    return limit.wait_s(failures, now)


async def log_in(
    session: AsyncSession, settings: Settings, login_text: str, password: str
) -> TokenPair:
    """A new sign-in (a new token family). A wrong password is recorded before LoginFailed is
    raised: the caller commits it although the request fails (or the limit would not count)."""
    try:
        login = rules.normalise_login(login_text)
    except rules.LoginInvalid:
        login = None
    resident = (
        None
        if login is None
        else await repository.resident_by_login(session, login.value, for_update=True)
    )
    if resident is None:
        await passwords.spend_like_a_verify(settings, password)
        raise LoginFailed("the login or the password is wrong")
    limit = password_limit(settings)
    wait_s = await _login_wait_s(session, limit, resident)
    if wait_s is not None:
        raise LoginLocked(limit.locked(wait_s), wait_s)
    if not await passwords.verify_password(settings, resident.password_hash, password):
        session.add(
            FailedAttempt(
                kind=AttemptKind.LOGIN, resident_id=resident.id, card_no=None, at=utc_now()
            )
        )
        await session.flush()
        raise LoginFailed(limit.wrong("login"))
    if passwords.needs_rehash(settings, resident.password_hash):
        resident.password_hash = await passwords.hash_password(settings, password)
    resident.last_login_at = utc_now()
    return await _issue_pair(session, settings, resident.id, secrets.token_hex(16))


async def revoke_families(session: AsyncSession, family_ids: list[str]) -> int:
    """Revoke every refresh token of these families and the access tokens issued with them."""
    return await repository.revoke_families(session, family_ids, utc_now())


async def refresh(
    session: AsyncSession, settings: Settings, refresh_token: str, *, grace_s: int = 0
) -> TokenPair:
    """The next pair of this sign-in; the token given is used up. A token used before revokes
    its family (RefreshReused, after the revocation is flushed: the caller commits it).

    With grace_s (the web session's renewals), the used token stays good for grace_s or until
    `confirm_renewal` (the new pair seen), whichever comes first: a use within that raises
    RefreshRaced with the principal of the pair the first use gave, and revokes nothing."""
    token_sha256 = _sha256(refresh_token)
    row = await repository.refresh_by_hash(session, token_sha256)
    if row is not None:
        # One resident's refreshes and logouts take turns (the resident's row lock): two
        # revocations of one family at once would deadlock on its rows. Then read it again.
        await repository.lock_resident(session, row.resident_id)
        row = await repository.refresh_by_hash(session, token_sha256)
    now = utc_now()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise RefreshRefused("this refresh token is unknown, expired or revoked: log in again")
    grace_until = now + timedelta(seconds=grace_s) if grace_s > 0 else None
    if row.used_at is not None or not await repository.claim_refresh(
        session, row.id, now, grace_until
    ):
        if grace_s > 0:
            await _raise_if_raced(session, token_sha256, now)
        await revoke_families(session, [row.family_id])
        raise RefreshReused(
            "this refresh token was already used, so it may have been copied: every session of "
            "this sign-in is ended; log in again"
        )
    return await _issue_pair(session, settings, row.resident_id, row.family_id)


async def _raise_if_raced(session: AsyncSession, token_sha256: str, now: datetime) -> None:
    """RefreshRaced if this used token is within its grace and the pair its use gave is live."""
    row = await repository.refresh_by_hash(session, token_sha256)  # as the winner committed it
    if row is None or row.grace_until is None or row.grace_until <= now:
        return
    newest = await repository.newest_of_family(session, row.family_id)
    if newest is None or newest.id == row.id or newest.access_token_id is None:
        return
    try:
        principal = await auth_service.principal_of_token(session, newest.access_token_id)
    except Unauthenticated:
        return
    raise RefreshRaced("a parallel request renewed this sign-in just now", principal)


async def confirm_renewal(session: AsyncSession, refresh_token: str) -> None:
    """The browser holds the renewed pair (it presented it): the grace of the tokens used
    before it ends now (`refresh`)."""
    row = await repository.refresh_by_hash(session, _sha256(refresh_token))
    if row is not None:
        await repository.close_grace(session, row.family_id)


async def log_out(
    session: AsyncSession, resident_id: str, access_token_id: int, *, everywhere: bool
) -> None:
    """End this sign-in (its family), or every sign-in of the resident."""
    await repository.lock_resident(session, resident_id)  # as refresh does
    families: list[str] = []
    if everywhere:
        families = await repository.open_families(session, resident_id)
    else:
        row = await repository.refresh_by_access_token(session, access_token_id)
        if row is not None:
            families = [row.family_id]
    await auth_service.revoke_token(session, access_token_id)
    if families:
        await revoke_families(session, families)
