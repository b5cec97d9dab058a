"""Every route of the finance console, walked by every kind of visitor that is not a finance
officer (not signed in, a terminal signing its requests, a resident, an operator's token, an
admin and a planner signed in as staff): each gets the staff sign-in page or the 404 page,
never a figure, and nothing changes. A finance officer gets the pages (so the walk can fail).
The one who asks cannot approve, on the page either."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.routing import APIRoute

from clearing.api.app import create_app
from clearing.approvals.models import ApprovalRequest
from clearing.auth.models import Role
from clearing.ingest.models import TapRecord
from clearing.registry import service as registry_service
from clearing.residents import signin
from clearing.web import console, console_books
from terminals.signing import TerminalCredential, signed_headers
from tests.clearing.apiharness import LIST_KEY_HEX
from tests.web.conftest import web_settings
from tests.web.consoleharness import STAFF_PASSWORD, Seeded, seed_console

BASE = "http://console.test"
SESSION_KEY = Fernet.generate_key()
RESIDENT_PASSWORD = "tram lines at dawn"


@dataclass
class Console:
    app: FastAPI
    seeded: Seeded
    data_markers: tuple[str, ...]  # text only a console page shows


@pytest.fixture
async def city(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    settings = web_settings(
        sqlite_url,
        tmp_path / "data",
        list_signing_key=LIST_KEY_HEX,
        web_session_key=SESSION_KEY.decode(),
    )
    seeded = await seed_console(sqlite_url, tmp_path, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        # a participant, a card, a terminal, a settlement file's header, a break's amount
        markers = ("bus-1", "3100000000000000", "0000010000A1", "end_to_end_id", "12.34")
        yield Console(app, seeded, markers)


def _client(app: FastAPI, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, **kwargs)


def _routes() -> list[APIRoute]:
    """Every console route; signing out last (it would end the walker's sign-in)."""
    routes = [r for r in (*console.router.routes, *console_books.router.routes)]
    return sorted(routes, key=lambda route: route.path == "/console/signout")


def _path(route: APIRoute, seeded: Seeded, request_id: int) -> str:
    values = {
        "tap_id": seeded.held[0],
        "request_id": request_id,
        "day": seeded.settled_day,
        "name": f"settlement-{seeded.settled_day}.csv",
        "break_id": seeded.break_id,
        "action": "assign",
    }
    path = route.path
    for name, value in values.items():
        path = path.replace("{" + name + "}", str(value))
    return "/web" + path


async def _csrf(client: httpx.AsyncClient) -> str:
    page = await client.get("/web/console/signin")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


async def _staff_sign_in(client: httpx.AsyncClient, username: str) -> None:
    token = await _csrf(client)
    answer = await client.post(
        "/web/console/signin",
        data={"csrf_token": token, "username": username, "password": STAFF_PASSWORD},
    )
    assert answer.status_code == 303, answer.text


def _staff_cookie(token: str) -> dict[str, str]:
    payload = {"v": 1, "kind": "staff", "access": token, "refresh": None}
    return {"oc_session": Fernet(SESSION_KEY).encrypt(json.dumps(payload).encode()).decode()}


async def _visitors(city: Console) -> dict[str, httpx.AsyncClient]:
    app = city.app
    visitors = {"not signed in": _client(app)}
    async with app.state.sessionmaker() as session:
        await signin.sign_up(session, app.state.settings, "res@example.cn", RESIDENT_PASSWORD, None)
        operator, _ = await registry_service.issue_token(
            session, Role.OPERATOR, subject="bus-1", label="t"
        )
        await session.commit()
    resident = _client(app)
    token = await _csrf(resident)
    signed = await resident.post(
        "/web/signin",
        data={"csrf_token": token, "login": "res@example.cn", "password": RESIDENT_PASSWORD},
    )
    assert signed.status_code == 303, signed.text
    visitors["resident"] = resident
    visitors["operator"] = _client(app, cookies=_staff_cookie(operator))
    for name in ("adam", "pat"):  # staff without the finance role
        visitors[name] = _client(app)
        await _staff_sign_in(visitors[name], name)
    return visitors


def _terminal_headers(city: Console, method: str, path: str) -> dict[str, str]:
    credential = TerminalCredential(city.seeded.terminal_id, city.seeded.terminal_key)
    return signed_headers(credential, method, BASE + path, b"", int(time.time()))


async def _pending_request(city: Console, asker: str) -> int:
    from clearing.approvals import service as approvals
    from clearing.approvals.models import ApprovalKind
    from clearing.staff import service as staff_service

    async with city.app.state.sessionmaker() as session:
        principal = await staff_service.acting_as(session, asker)
        tools = approvals.Tools(None, city.app.state.settings)
        row = await approvals.ask(
            session, principal, tools, ApprovalKind.WRITE_OFF, str(city.seeded.held[1]), "forged"
        )
        await session.commit()
        return row.id


def _refused(answer: httpx.Response) -> bool:
    if answer.status_code == 303:
        return answer.headers["location"].startswith("/web/console/signin")
    return answer.status_code == 404


async def test_every_console_route_refuses_everyone_but_finance(city: Console) -> None:
    request_id = await _pending_request(city, "ann")
    visitors = await _visitors(city)
    walked = 0
    for route in _routes():
        if route.path == "/console/signin":
            continue  # the sign-in page itself, for everyone
        path = _path(route, city.seeded, request_id)
        for method in route.methods:
            for who, client in visitors.items():
                notes = ("note", "release_note", "write_off_note", "explain_note", "resolve_note")
                data = {
                    "csrf_token": await _csrf(client),
                    "assignee": "x",
                    **dict.fromkeys(notes, "x"),
                }
                kwargs = {"data": data} if method == "POST" else {}
                answer = await client.request(method, path, **kwargs)
                assert _refused(answer), (who, method, path, answer.status_code)
                assert not any(m in answer.text for m in city.data_markers), (who, path)
                walked += 1
            # a terminal: it signs its requests, and has no business in the console
            terminal = visitors["not signed in"]
            answer = await terminal.request(
                method, path, headers=_terminal_headers(city, method, path)
            )
            assert _refused(answer) or answer.status_code == 403, (method, path)
    assert walked >= 20 * len(visitors)
    async with city.app.state.sessionmaker() as session:
        held = await session.get(TapRecord, city.seeded.held[0])
        asked = await session.get(ApprovalRequest, request_id)
        assert held is not None and held.state == "quarantined"  # released by no one
        assert asked is not None and asked.state.value == "pending"  # decided by no one
    for client in visitors.values():
        await client.aclose()


async def test_finance_sees_every_page_and_cannot_approve_what_they_asked(
    city: Console,
) -> None:
    request_id = await _pending_request(city, "ann")
    async with _client(city.app, headers={"Accept-Language": "en"}) as ann:
        await _staff_sign_in(ann, "ann")
        for route in _routes():
            if "GET" not in route.methods:
                continue
            answer = await ann.get(_path(route, city.seeded, request_id))
            assert answer.status_code == 200, (route.path, answer.text[:300])
        # the walk's markers are what these pages show a finance officer
        assert "3100000000000000" in (await ann.get("/web/console/quarantine")).text
        assert "bus-1" in (await ann.get("/web/console/statements")).text
        day = city.seeded.settled_day
        csv = await ann.get(f"/web/console/settlements/{day}/files/settlement-{day}.csv")
        assert "end_to_end_id" in csv.text
        queue = await ann.get("/web/console/approvals")
        assert "You asked for this" in queue.text
        assert f"/approvals/{request_id}/approve" not in queue.text  # no button to press
        approve = f"/web/console/approvals/{request_id}/approve"
        pressed = await ann.post(approve, data={"csrf_token": await _csrf(ann), "note": ""})
        assert pressed.status_code == 422
        assert "another finance officer decides it" in pressed.text
    async with city.app.state.sessionmaker() as session:
        asked = await session.get(ApprovalRequest, request_id)
        assert asked is not None and asked.state.value == "pending"
    async with _client(city.app) as bob:
        await _staff_sign_in(bob, "bob")
        done = await bob.post(approve, data={"csrf_token": await _csrf(bob), "note": "seen"})
        assert done.status_code == 303, done.text
    async with city.app.state.sessionmaker() as session:
        held = await session.get(TapRecord, city.seeded.held[1])
        assert held is not None and held.state == "written_off"


async def test_a_break_write_off_is_asked_on_its_page_and_done_when_another_approves(
    city: Console,
) -> None:
    page = f"/web/console/breaks/{city.seeded.break_id}"
    async with _client(city.app, headers={"Accept-Language": "en"}) as ann:
        await _staff_sign_in(ann, "ann")
        shown = await ann.get(page)
        assert "Ask for a write-off" in shown.text and "Status</dt><dd>open" in shown.text
        blank = await ann.post(
            f"{page}/write-off", data={"csrf_token": await _csrf(ann), "write_off_note": " "}
        )
        assert blank.status_code == 422 and 'id="write_off_note-error"' in blank.text
        asked = await ann.post(
            f"{page}/write-off",
            data={"csrf_token": await _csrf(ann), "write_off_note": "rounding at the bank"},
        )
        assert asked.status_code == 303, asked.text
        shown = await ann.get(page)
        assert "write-off asked (#1, pending)" in shown.text
        assert "Status</dt><dd>open" in shown.text  # asked is not written off
        queue = await ann.get("/web/console/approvals")
        assert f"Write off reconciliation break #{city.seeded.break_id}" in queue.text
        assert "/approvals/1/approve" not in queue.text  # the one who asked has no button
    async with _client(city.app, headers={"Accept-Language": "zh-CN"}) as bob:
        await _staff_sign_in(bob, "bob")
        queue = await bob.get("/web/console/approvals")
        assert f"核销对账差异 #{city.seeded.break_id}" in queue.text
        done = await bob.post(
            "/web/console/approvals/1/approve", data={"csrf_token": await _csrf(bob), "note": ""}
        )
        assert done.status_code == 303, done.text
        shown = await bob.get(page)
        assert "</dt><dd>written_off</dd>" in shown.text and "finance:bob" in shown.text
        assert f"{page}/write-off" not in shown.text  # closed: nothing more to ask
