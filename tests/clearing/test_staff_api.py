"""Staff sign-in over the API (POST /v1/staff/sessions, DELETE /v1/staff/sessions/current): a
finance officer's client trades a username and password for a bearer token that opens the
finance endpoints, in a role the account holds; wrong passwords are 401 and, past the limit,
429 with Retry-After; the body is strict; signing out or disabling the account ends the token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI

from clearing.auth.models import Role
from clearing.staff import service as staff_service
from tests.clearing.apiharness import running_app
from tests.clearing.staffharness import STAFF_PASSWORD, officer, random_username

SESSIONS = "/v1/staff/sessions"
FINANCE = "/v1/reconciliation/runs"  # finance staff read the reconciliation runs


async def _staff(app: FastAPI, *roles: Role) -> str:
    username = random_username()
    async with app.state.sessionmaker() as session:
        await staff_service.add_staff(
            session, app.state.settings, username, STAFF_PASSWORD, frozenset(roles)
        )
        await session.commit()
    return username


def _problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code and body["detail"], body
    return body


async def test_a_finance_officer_signs_in_reads_and_signs_out(sqlite_url: str, tmp_path: Path):
    async with running_app(sqlite_url, tmp_path) as (app, client):
        username = await _staff(app, Role.FINANCE, Role.ADMIN)
        signed = await client.post(
            SESSIONS, json={"username": username, "password": STAFF_PASSWORD}
        )
        assert signed.status_code == 201, signed.text
        body = signed.json()
        assert body["token_type"] == "bearer" and body["username"] == username
        assert body["role"] == "finance" and body["roles"] == ["finance", "admin"]
        expires = datetime.fromisoformat(body["expires_at"])
        assert timedelta(hours=7) < expires - datetime.now(UTC) <= timedelta(hours=8)
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        assert (await client.get(FINANCE, headers=bearer)).status_code == 200
        me = (await client.get("/v1/me", headers=bearer)).json()
        assert me == {"role": "finance", "subject": username}
        # Another sign-in acts in the account's other role: its token is an administrator's.
        admin = await client.post(
            SESSIONS, json={"username": username, "password": STAFF_PASSWORD, "role": "admin"}
        )
        assert admin.status_code == 201 and admin.json()["role"] == "admin"
        admin_bearer = {"Authorization": f"Bearer {admin.json()['access_token']}"}
        me = (await client.get("/v1/me", headers=admin_bearer)).json()
        assert me == {"role": "admin", "subject": username}
        out = await client.delete(f"{SESSIONS}/current", headers=bearer)
        assert out.status_code == 204
        _problem(await client.get(FINANCE, headers=bearer), 401, "unauthenticated")
        # The other sign-in is its own token: it still works.
        assert (await client.get("/v1/me", headers=admin_bearer)).status_code == 200
        # A token an administrator issued is not ended by its bearer: it still works.
        _, issued = await officer(app)
        _problem(await client.delete(f"{SESSIONS}/current", headers=issued), 409, "not_a_sign_in")
        assert (await client.get(FINANCE, headers=issued)).status_code == 200


async def test_wrong_passwords_are_refused_then_locked(sqlite_url: str, tmp_path: Path):
    async with running_app(sqlite_url, tmp_path, resident_login_failures_max=3) as (app, client):
        username = await _staff(app, Role.FINANCE)
        unknown = await client.post(SESSIONS, json={"username": "nobody-here", "password": "x"})
        wrong = await client.post(SESSIONS, json={"username": username, "password": "wrong one"})
        # The same answer whether the account exists or not.
        assert (
            _problem(unknown, 401, "staff_sign_in_failed")["title"]
            == (_problem(wrong, 401, "staff_sign_in_failed")["title"])
        )
        for _ in range(2):  # the wrong passwords count, although their requests failed
            await client.post(SESSIONS, json={"username": username, "password": "wrong again"})
        locked = await client.post(
            SESSIONS, json={"username": username, "password": STAFF_PASSWORD}
        )
        _problem(locked, 429, "staff_locked")
        assert int(locked.headers["Retry-After"]) > 0


async def test_a_role_not_held_a_disabled_account_and_bad_bodies(sqlite_url: str, tmp_path: Path):
    async with running_app(sqlite_url, tmp_path) as (app, client):
        username = await _staff(app, Role.PLANNER)
        good = {"username": username, "password": STAFF_PASSWORD}
        _problem(
            await client.post(SESSIONS, json={**good, "role": "finance"}),
            403,
            "staff_role_not_held",
        )
        for bad in (
            {**good, "role": "operator"},  # not a staff role
            {**good, "role": None},  # left out, never null
            {**good, "password": 12345678901234},  # a string, not a number
            {**good, "extra": 1},  # unknown keys are refused
            {"username": username},
        ):
            assert (await client.post(SESSIONS, json=bad)).status_code == 422, bad
        duplicated = b'{"username": "a", "username": "b", "password": "x"}'
        refused = await client.post(
            SESSIONS, content=duplicated, headers={"Content-Type": "application/json"}
        )
        assert refused.status_code == 422
        signed = await client.post(SESSIONS, json=good)
        assert signed.status_code == 201 and signed.json()["role"] == "planner"
        bearer = {"Authorization": f"Bearer {signed.json()['access_token']}"}
        _problem(await client.get(FINANCE, headers=bearer), 403, "forbidden")  # a planner's
        async with app.state.sessionmaker() as session:
            await staff_service.disable_staff(session, username)
            await session.commit()
        _problem(await client.get("/v1/me", headers=bearer), 401, "unauthenticated")
        _problem(await client.post(SESSIONS, json=good), 401, "staff_sign_in_failed")
        # Signing out needs a staff token.
        _problem(await client.delete(f"{SESSIONS}/current"), 401, "unauthenticated")
