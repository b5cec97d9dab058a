"""Staff accounts: added with a hashed password and staff roles only, signed in for a bearer
token that stands for the username, locked after repeated wrong passwords, disabled at once."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clearing import db
from clearing.auth import service as auth_service
from clearing.auth.models import Role
from clearing.errors import Unauthenticated
from clearing.registry import models as registry_models
from clearing.settings import Settings
from clearing.staff import service
from clearing.staff.errors import StaffAccountInvalid, StaffLocked, StaffSignInFailed, StaffTaken

PASSWORD = "two keys, two people"
# api_tokens refers to participants: their table must be known to the ORM's metadata
assert registry_models.Participant.__tablename__ == "participants"


@pytest.fixture
async def session(sqlite_url: str):  # type: ignore[no-untyped-def]
    engine = db.make_engine(sqlite_url)
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        yield session
    await engine.dispose()


def _settings(sqlite_url: str) -> Settings:
    return Settings(database_url=sqlite_url, resident_login_failures_max=3)


async def test_a_staff_member_signs_in_for_a_token_of_their_first_role(
    session: AsyncSession, sqlite_url: str
) -> None:
    settings = _settings(sqlite_url)
    roles = service.parse_roles("admin, finance")
    account = await service.add_staff(session, settings, "Ann", PASSWORD, roles, "Ann Li")
    assert account.username == "ann" and PASSWORD not in account.password_hash
    with pytest.raises(StaffTaken):
        await service.add_staff(session, settings, "ann", PASSWORD, roles)
    signed = await service.sign_in(session, settings, "ann", PASSWORD)
    assert signed.principal.role is Role.FINANCE and signed.principal.subject == "ann"
    assert signed.principal.has_role(Role.ADMIN)
    bearer = await auth_service.authenticate_bearer(session, f"Bearer {signed.token}")
    assert (bearer.role, bearer.subject) == (Role.FINANCE, "ann")
    await service.sign_out(session, signed.principal)
    with pytest.raises(Unauthenticated):
        await auth_service.authenticate_bearer(session, f"Bearer {signed.token}")


@pytest.mark.parametrize(
    ("username", "password", "roles"),
    [
        ("a", PASSWORD, "finance"),  # too short a username
        ("ann", "short", "finance"),  # too short a password
        ("ann", "ann's own password", "finance"),  # holds the username
        ("ann", PASSWORD, "resident"),  # not a staff role
        ("ann", PASSWORD, "operator"),
        ("ann", PASSWORD, " , "),
    ],
)
async def test_bad_accounts_are_refused(
    session: AsyncSession, sqlite_url: str, username: str, password: str, roles: str
) -> None:
    with pytest.raises(StaffAccountInvalid):
        await service.add_staff(
            session, _settings(sqlite_url), username, password, service.parse_roles(roles)
        )


async def test_wrong_passwords_lock_the_account_even_for_the_right_one(
    session: AsyncSession, sqlite_url: str
) -> None:
    settings = _settings(sqlite_url)
    await service.add_staff(session, settings, "bob", PASSWORD, frozenset({Role.FINANCE}))
    with pytest.raises(StaffSignInFailed):
        await service.sign_in(session, settings, "nobody", PASSWORD)
    for _ in range(3):
        with pytest.raises(StaffSignInFailed):
            await service.sign_in(session, settings, "bob", "not the password")
    with pytest.raises(StaffLocked) as locked:
        await service.sign_in(session, settings, "bob", PASSWORD)
    assert locked.value.retry_after_s > 0


async def test_disabling_ends_every_sign_in_at_once(session: AsyncSession, sqlite_url: str) -> None:
    settings = _settings(sqlite_url)
    await service.add_staff(session, settings, "cat", PASSWORD, frozenset({Role.FINANCE}))
    signed = await service.sign_in(session, settings, "cat", PASSWORD)
    await service.disable_staff(session, "cat")
    with pytest.raises(Unauthenticated):
        await auth_service.authenticate_bearer(session, f"Bearer {signed.token}")
    with pytest.raises(StaffSignInFailed):
        await service.sign_in(session, settings, "cat", PASSWORD)
