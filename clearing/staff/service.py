"""Staff accounts and their console sign-ins: add, list, disable, sign in, sign out.

Passwords are residents' Argon2id (clearing/residents/passwords.py, the same code and cost);
wrong passwords are counted per account under residents' limit (rules.PasswordLimit, from
signin.password_limit: the same window, numbers and messages). A sign-in is a bearer token of clearing/auth
(role: the account's first staff role, subject: the username, living SESSION_TTL), which the
console's session cookie holds; disabling an account revokes its tokens. Never commits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.auth import repository as auth_repository
from clearing.auth import service as auth_service
from clearing.auth.models import Role
from clearing.auth.service import Principal
from clearing.db.base import utc_now
from clearing.residents import passwords
from clearing.residents.rules import PasswordLimit
from clearing.residents.signin import password_limit
from clearing.settings import Settings
from clearing.staff import repository
from clearing.staff.errors import (
    NotASignIn,
    StaffAccountInvalid,
    StaffLocked,
    StaffRoleNotHeld,
    StaffSignInFailed,
    StaffTaken,
    StaffUnknown,
)
from clearing.staff.models import StaffAccount, StaffFailedLogin
from clearing.staff.repository import STAFF_ROLES

USERNAME_PATTERN = r"^[a-z][a-z0-9._-]{1,31}$"
PASSWORD_LENGTH_MIN = 12  # a staff password guards payouts: longer than a resident's minimum
PASSWORD_LENGTH_MAX = 256
SESSION_TTL = timedelta(hours=8)  # one working day; signing in again is cheap
SESSION_LABEL = "console sign-in"
API_LABEL = "api sign-in"  # a sign-in at POST /v1/staff/sessions

_USERNAME = re.compile(USERNAME_PATTERN)


@dataclass(frozen=True, slots=True)
class StaffSignIn:
    token: str  # a bearer token of clearing/auth, shown once: the session cookie holds it
    expires_at: datetime
    principal: Principal


def parse_roles(text: str) -> frozenset[Role]:
    """Roles from "finance,admin"; only staff roles, at least one."""
    roles: set[Role] = set()
    for name in (part.strip().lower() for part in text.split(",")):
        if not name:
            continue
        try:
            role = Role(name)
        except ValueError:
            role = None
        if role not in STAFF_ROLES:
            allowed = ", ".join(r.value for r in STAFF_ROLES)
            raise StaffAccountInvalid(f"{name!r} is not a staff role: use {allowed}")
        roles.add(role)
    if not roles:
        raise StaffAccountInvalid("name one role at least: finance, admin or planner")
    return frozenset(roles)


def roles_of(account: StaffAccount) -> frozenset[Role]:
    return frozenset(Role(name) for name in account.roles.split(",") if name)


def principal_of(account: StaffAccount, token_pk: int, role: Role | None = None) -> Principal:
    """The account as a caller: `role`, or its first role (finance before admin before
    planner); every role is in `roles`, the username is the subject. StaffRoleNotHeld if the
    account does not hold `role`."""
    roles = roles_of(account)
    if role is not None and role not in roles:
        held = ", ".join(r.value for r in STAFF_ROLES if r in roles)
        raise StaffRoleNotHeld(f"{account.username!r} holds {held}, not {role.value}")
    first = role or next(r for r in STAFF_ROLES if r in roles)
    return Principal(token_pk, first, account.username, None, roles)


def _check_password(password: str, username: str) -> None:
    if not PASSWORD_LENGTH_MIN <= len(password) <= PASSWORD_LENGTH_MAX:
        raise StaffAccountInvalid(
            f"a staff password has {PASSWORD_LENGTH_MIN} .. {PASSWORD_LENGTH_MAX} characters"
        )
    if username in password.lower():
        raise StaffAccountInvalid("the password must not contain the username")


async def add_staff(
    session: AsyncSession,
    settings: Settings,
    username: str,
    password: str,
    roles: frozenset[Role],
    display_name: str | None = None,
) -> StaffAccount:
    """A new account; StaffTaken if the username has one (disabled accounts keep theirs)."""
    username = username.strip().lower()
    if not _USERNAME.match(username):
        raise StaffAccountInvalid(
            "a username is 2 .. 32 characters: a lower-case letter, then letters, digits, . _ -"
        )
    _check_password(password, username)
    if not roles or not roles <= set(STAFF_ROLES):
        raise StaffAccountInvalid("staff roles are finance, admin and planner")
    if await repository.account_by_username(session, username) is not None:
        raise StaffTaken(f"{username} already has an account")
    account = StaffAccount(
        username=username,
        display_name=(display_name or "").strip()[:100] or None,
        roles=",".join(sorted(role.value for role in roles)),
        password_hash=await passwords.hash_password(settings, password),
        created_at=utc_now(),
        last_login_at=None,
        disabled_at=None,
    )
    session.add(account)
    try:
        await session.flush()
    except IntegrityError:
        raise StaffTaken(f"{username} already has an account") from None
    return account


async def list_staff(session: AsyncSession) -> list[StaffAccount]:
    return await repository.list_accounts(session)


async def get_staff(session: AsyncSession, username: str) -> StaffAccount:
    account = await repository.account_by_username(session, username.strip().lower())
    if account is None:
        raise StaffUnknown(f"no staff account {username!r}: see `onecard staff list`")
    return account


async def disable_staff(session: AsyncSession, username: str) -> StaffAccount:
    """The account can no longer sign in and its tokens (console sign-ins, API tokens issued
    for it) are revoked now (idempotent)."""
    account = await get_staff(session, username)
    if account.disabled_at is None:
        account.disabled_at = utc_now()
        await repository.revoke_tokens(session, account.username, account.disabled_at)
        await session.flush()
    return account


async def _wait_s(session: AsyncSession, limit: PasswordLimit, account: StaffAccount) -> int | None:
    now = utc_now()
    since = limit.counted_since(now, account.last_login_at)
    failures = await repository.failures_since(session, account.id, since)
    return limit.wait_s(failures, now)


async def verify_staff(
    session: AsyncSession, settings: Settings, username: str, password: str
) -> StaffAccount:
    """The account if the password is right. A wrong password is recorded (flushed) before
    StaffSignInFailed is raised: the caller commits it although the request fails."""
    account = await repository.account_by_username(
        session, username.strip().lower()[:64], for_update=True
    )
    if account is None or account.disabled_at is not None:
        await passwords.spend_like_a_verify(settings, password)
        raise StaffSignInFailed("the username or the password is wrong")
    limit = password_limit(settings)
    wait_s = await _wait_s(session, limit, account)
    if wait_s is not None:
        raise StaffLocked(limit.locked(wait_s), wait_s)
    if not await passwords.verify_password(settings, account.password_hash, password):
        session.add(StaffFailedLogin(staff_id=account.id, at=utc_now()))
        await session.flush()
        raise StaffSignInFailed(limit.wrong("username"))
    if passwords.needs_rehash(settings, account.password_hash):
        account.password_hash = await passwords.hash_password(settings, password)
    account.last_login_at = utc_now()
    await session.flush()
    return account


async def sign_in(
    session: AsyncSession,
    settings: Settings,
    username: str,
    password: str,
    *,
    label: str = SESSION_LABEL,
    role: Role | None = None,
) -> StaffSignIn:
    """Authenticate a staff member: a new bearer token (SESSION_TTL) and the Principal it
    stands for (its first staff role, or `role` if the account holds it; the username; every
    role of the account). `label` says where the sign-in came from (the console, the API) on
    the token's row."""
    account = await verify_staff(session, settings, username, password)
    principal = principal_of(account, 0, role)
    expires_at = utc_now() + SESSION_TTL
    token, row = await auth_service.issue_token(
        session,
        principal.role,
        subject=account.username,
        label=label,
        expires_at=expires_at,
    )
    return StaffSignIn(token, expires_at, replace(principal, token_pk=row.id))


async def sign_out(session: AsyncSession, principal: Principal) -> None:
    """End this sign-in: its token is revoked."""
    await auth_service.revoke_token(session, principal.token_pk)


async def sign_out_bearer(session: AsyncSession, principal: Principal) -> None:
    """`sign_out` for the bearer of a token sent to the API, which must be a sign-in's:
    NotASignIn for a token an administrator issued (`onecard registry token issue`), which is
    theirs to revoke, not the bearer's to end."""
    row = await auth_repository.token_by_id(session, principal.token_pk)
    if row is None or row.label not in (SESSION_LABEL, API_LABEL):
        raise NotASignIn(
            "this token was issued by an administrator, not by signing in: it is revoked with "
            "`onecard registry token revoke ID`"
        )
    await sign_out(session, principal)


async def active_staff_with(session: AsyncSession, username: str, role: Role) -> StaffAccount:
    """The active account `username`, which holds `role`; StaffUnknown otherwise. How the CLI
    and the approvals know a named person is a member of staff with that role."""
    account = await repository.account_by_username(session, username.strip().lower())
    if account is None or account.disabled_at is not None or role not in roles_of(account):
        raise StaffUnknown(
            f"{username!r} is not an active staff account with the {role.value} role: "
            "see `onecard staff list`"
        )
    return account


async def acting_as(session: AsyncSession, username: str) -> Principal:
    """The principal of a staff member named on the command line (`--by`), who must have an
    active account; what they may do is checked by the service they call."""
    account = await get_staff(session, username)
    if account.disabled_at is not None:
        raise StaffUnknown(f"the staff account {account.username!r} is disabled")
    return principal_of(account, 0)
