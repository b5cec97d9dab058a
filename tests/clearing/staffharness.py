"""Staff accounts for tests: named officers (random usernames, so tests share one database)
with a bearer token each whose subject is the username, as approvals require."""

from __future__ import annotations

import secrets

from fastapi import FastAPI

from clearing.auth.models import Role
from clearing.registry import service as registry_service
from clearing.staff import service as staff_service

STAFF_PASSWORD = "ledger lines at dusk"


def random_username(prefix: str = "fin") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def officer(app: FastAPI, *roles: Role, prefix: str = "fin") -> tuple[str, dict[str, str]]:
    """A new staff account holding `roles` (finance by default) and the Authorization header
    of a token that stands for it (role: its first role)."""
    roles = roles or (Role.FINANCE,)
    username = random_username(prefix)
    async with app.state.sessionmaker() as session:
        await staff_service.add_staff(
            session, app.state.settings, username, STAFF_PASSWORD, frozenset(roles)
        )
        token, _ = await registry_service.issue_token(
            session, roles[0], subject=username, label="test"
        )
        await session.commit()
    return username, {"Authorization": f"Bearer {token}"}
