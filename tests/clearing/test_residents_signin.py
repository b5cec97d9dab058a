"""Residents' accounts over HTTP: sign-up, login, rotating refresh tokens, logout, the limits on
wrong passwords, and who counts as a resident. On PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from clearing.auth.models import ApiToken, Role
from clearing.db.base import utc_now
from clearing.residents.models import FailedAttempt, RefreshToken, Resident
from tests.clearing.apiharness import world
from tests.clearing.residentharness import (
    PASSWORD,
    log_in,
    new_resident,
    random_email,
    sign_up,
)


@pytest.fixture(params=["pg_url", "sqlite_url"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(request.param)


async def test_sign_up_normalises_the_login_and_allows_one_account_per_login(
    db_url, tmp_path
) -> None:
    async with world(db_url, tmp_path) as w:
        name = random_email().split("@")[0]
        response = await w.client.post(
            "/v1/residents",
            json={
                "login": f"{name.upper()}@Example.CN",
                "password": PASSWORD,
                "display_name": "Li",
            },
        )
        assert response.status_code == 201, response.text
        assert response.json()["login"] == f"{name}@example.cn"
        again = await w.client.post(
            "/v1/residents", json={"login": f"{name}@EXAMPLE.cn", "password": PASSWORD}
        )
        assert again.status_code == 409 and again.json()["code"] == "login_taken"
        assert "log in" in again.json()["detail"]
        mobile = "13" + str(utc_now().timestamp()).replace(".", "")[-9:]
        assert (
            await w.client.post("/v1/residents", json={"login": mobile, "password": PASSWORD})
        ).json()["login"] == f"+86{mobile}"
        same_phone = await w.client.post(
            "/v1/residents", json={"login": f"+86{mobile}", "password": PASSWORD}
        )
        assert same_phone.status_code == 409
        # logging in with another form of the same login finds the account
        assert (await log_in(w, f"{name}@EXAMPLE.CN")).resident_id == response.json()["id"]
        async with w.app.state.sessionmaker() as session:
            stored = await session.get(Resident, response.json()["id"])
            assert stored.password_hash.startswith("$argon2id$")
            assert PASSWORD not in stored.password_hash


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short", "invalid_request"),  # the schema's length
        ("password123", "password_refused"),  # a well-known password
        ("x" * 129, "invalid_request"),
    ],
)
async def test_weak_passwords_are_refused_with_the_rule(
    sqlite_url, tmp_path, password, code
) -> None:
    async with world(sqlite_url, tmp_path) as w:
        response = await w.client.post(
            "/v1/residents", json={"login": random_email(), "password": password}
        )
        assert response.status_code == 422 and response.json()["code"] == code
        if code == "password_refused":
            assert "10 to 128 characters" in response.json()["detail"]


async def test_a_password_equal_to_the_login_is_refused(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        login = random_email()
        response = await w.client.post("/v1/residents", json={"login": login, "password": login})
        assert response.status_code == 422 and response.json()["code"] == "password_refused"


async def test_refresh_rotates_and_a_reused_refresh_token_ends_the_sign_in(
    db_url, tmp_path
) -> None:
    async with world(db_url, tmp_path) as w:
        first = await new_resident(w)
        other_sign_in = await log_in(w, first.login)  # another phone, another family
        rotated = await w.client.post(
            "/v1/auth/refresh", json={"refresh_token": first.refresh_token}
        )
        assert rotated.status_code == 200, rotated.text
        second = rotated.json()
        assert second["refresh_token"] != first.refresh_token
        third = (
            await w.client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
        ).json()
        current = {"Authorization": f"Bearer {third['access_token']}"}
        assert (await w.client.get("/v1/me/cards", headers=current)).status_code == 200

        reused = await w.client.post(
            "/v1/auth/refresh", json={"refresh_token": first.refresh_token}
        )
        assert reused.status_code == 401 and reused.json()["code"] == "refresh_token_reused"
        assert reused.headers["www-authenticate"] == "Bearer"
        # the whole family is gone: the newest access and refresh tokens too
        assert (await w.client.get("/v1/me/cards", headers=current)).status_code == 401
        latest = await w.client.post(
            "/v1/auth/refresh", json={"refresh_token": third["refresh_token"]}
        )
        assert latest.status_code == 401 and latest.json()["code"] == "refresh_token_invalid"
        # the other sign-in is untouched
        assert (await w.client.get("/v1/me/cards", headers=other_sign_in.auth)).status_code == 200


async def test_concurrent_uses_of_one_refresh_token_give_one_pair_at_most(pg_url, tmp_path) -> None:
    async with world(pg_url, tmp_path) as w:
        signed_in = await new_resident(w)
        body = {"refresh_token": signed_in.refresh_token}
        answers = await asyncio.gather(
            *(w.client.post("/v1/auth/refresh", json=body) for _ in range(4))
        )
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses.count(200) <= 1 and statuses.count(401) >= 3, statuses
        async with w.app.state.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(RefreshToken).where(RefreshToken.resident_id == signed_in.resident_id)
                )
            ).scalars()
            # the reuse revoked the family, including a pair the winner may have received
            assert all(row.revoked_at is not None for row in rows)


async def test_expired_tokens_are_refused(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        signed_in = await new_resident(w)
        assert (await w.client.get("/v1/me/cards", headers=signed_in.auth)).status_code == 200
        past = utc_now() - timedelta(seconds=1)
        async with w.app.state.sessionmaker() as session:
            await session.execute(
                update(ApiToken)
                .where(ApiToken.subject == signed_in.resident_id)
                .values(expires_at=past)
            )
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.resident_id == signed_in.resident_id)
                .values(expires_at=past)
            )
            await session.commit()
        expired = await w.client.get("/v1/me/cards", headers=signed_in.auth)
        assert expired.status_code == 401 and "expired" in expired.json()["detail"]
        refresh = await w.client.post(
            "/v1/auth/refresh", json={"refresh_token": signed_in.refresh_token}
        )
        assert refresh.status_code == 401 and refresh.json()["code"] == "refresh_token_invalid"


async def test_access_tokens_are_short_lived_resident_tokens(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        signed_in = await new_resident(w)
        settings = w.app.state.settings
        async with w.app.state.sessionmaker() as session:
            row = (
                await session.execute(
                    select(ApiToken).where(ApiToken.subject == signed_in.resident_id)
                )
            ).scalar_one()
        assert row.role is Role.RESIDENT
        lifetime = row.expires_at - row.created_at
        assert timedelta(0) < lifetime <= timedelta(seconds=settings.resident_access_token_ttl_s)


async def test_wrong_passwords_make_the_account_wait_and_say_how_long(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        login = random_email()
        resident_id = await sign_up(w, login)
        neighbour = random_email()
        await sign_up(w, neighbour)
        limit = w.app.state.settings.resident_login_failures_max
        for _ in range(limit):
            wrong = await w.client.post(
                "/v1/auth/login", json={"login": login, "password": "not my password"}
            )
            assert wrong.status_code == 401 and wrong.json()["code"] == "login_failed"
        locked = await w.client.post("/v1/auth/login", json={"login": login, "password": PASSWORD})
        assert locked.status_code == 429 and locked.json()["code"] == "login_locked"
        retry_after = int(locked.headers["retry-after"])
        assert 0 < retry_after <= w.app.state.settings.resident_login_window_s
        assert f"{retry_after} s" in locked.json()["detail"]
        # per account: the neighbour logs in
        assert (await log_in(w, neighbour)).resident_id != resident_id
        # once the failures leave the window, the right password works again
        async with w.app.state.sessionmaker() as session:
            await session.execute(
                update(FailedAttempt)
                .where(FailedAttempt.resident_id == resident_id)
                .values(at=utc_now() - timedelta(hours=1))
            )
            await session.commit()
        assert (await log_in(w, login)).resident_id == resident_id


async def test_an_unknown_login_and_a_wrong_password_answer_alike(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        login = random_email()
        await sign_up(w, login)
        unknown = await w.client.post(
            "/v1/auth/login", json={"login": random_email(), "password": PASSWORD}
        )
        wrong = await w.client.post("/v1/auth/login", json={"login": login, "password": "nope"})
        assert unknown.status_code == wrong.status_code == 401
        assert unknown.json()["code"] == wrong.json()["code"] == "login_failed"


async def test_logout_ends_this_sign_in_or_every_one(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        phone = await new_resident(w)
        tablet = await log_in(w, phone.login)
        laptop = await log_in(w, phone.login)
        out = await w.client.post("/v1/auth/logout", headers=phone.auth)
        assert out.status_code == 204
        assert (await w.client.get("/v1/me", headers=phone.auth)).status_code == 401
        gone = await w.client.post("/v1/auth/refresh", json={"refresh_token": phone.refresh_token})
        assert gone.status_code == 401
        assert (await w.client.get("/v1/me", headers=tablet.auth)).status_code == 200
        everywhere = await w.client.post("/v1/auth/logout?everywhere=true", headers=tablet.auth)
        assert everywhere.status_code == 204
        for session in (tablet, laptop):
            assert (await w.client.get("/v1/me", headers=session.auth)).status_code == 401
            refreshed = await w.client.post(
                "/v1/auth/refresh", json={"refresh_token": session.refresh_token}
            )
            assert refreshed.status_code == 401


async def test_me_names_the_resident_and_staff_are_not_residents(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        signed_in = await new_resident(w)
        me = (await w.client.get("/v1/me", headers=signed_in.auth)).json()
        assert me["role"] == "resident" and me["subject"] == signed_in.resident_id
        assert me["resident"]["login"] == signed_in.login
        staff = (await w.client.get("/v1/me", headers=w.auth("admin"))).json()
        assert staff["role"] == "admin" and staff["resident"] is None
        for role in ("admin", "finance", "operator", "resident"):
            # the harness's resident token names no account: not a resident of this API either
            refused = await w.client.get("/v1/me/cards", headers=w.auth(role))
            assert refused.status_code == 403 and refused.json()["code"] == "not_a_resident"
        anonymous = await w.client.get("/v1/me/cards")
        assert anonymous.status_code == 401
