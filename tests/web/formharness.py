"""Sending the web app's forms as a browser does, without one: the CSRF cookie first, then the
form with its token; signing in through the sign-in form."""

from __future__ import annotations

import httpx

from tests.clearing import residentharness


async def csrf(client: httpx.AsyncClient) -> str:
    if "oc_csrf" not in client.cookies:
        await client.get("/web/signin")
    return client.cookies["oc_csrf"]


async def post(client: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    return await client.post(path, data={"csrf_token": await csrf(client), **fields})


async def web_sign_in(client: httpx.AsyncClient, login: str) -> None:
    answer = await post(client, "/web/signin", login=login, password=residentharness.PASSWORD)
    assert answer.status_code == 303, answer.text
