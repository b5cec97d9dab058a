"""Fixtures of the web apps' tests: the real service (uvicorn, in a thread, on a free port of
127.0.0.1) and Debian's chromium driven by Playwright for Python, with a recorder of every
request the pages make and screenshots under var/test-artifacts/screens/<lang>/<width>/.

Chromium is launched by path (scripts/browser.sh installs it); `playwright install` is never
used. Fixtures:
- `web_service`: the service on a fresh embedded SQLite database: (base URL, its Settings).
- `browser`: one chromium for the session.
- `open_page(lang, width, javascript=True)`: a new browser context (its own cookies) and page,
  in that language (Accept-Language) and width; its `requests` list records every URL asked for, and any
  request to another host than 127.0.0.1 is refused (and recorded, so the test fails).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright

from clearing.api.app import create_app
from clearing.settings import Settings

CHROMIUM = os.environ.get("ONECARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"
SCREENS = ARTIFACTS / "screens"
PHONE_WIDTH, DESK_WIDTH = 390, 1280
HEIGHTS = {PHONE_WIDTH: 844, DESK_WIDTH: 800}
ACCEPT_LANGUAGE = {"zh": "zh-CN,zh;q=0.9", "en": "en-GB,en;q=0.9"}
LOCAL_HOST = "127.0.0.1"
SERVER_START_S = 10.0


def web_settings(url: str, data_dir: Path, **overrides: object) -> Settings:
    """Settings of a test service: cheap password hashing (the tests sign up often)."""
    values: dict[str, object] = {
        "database_url": url,
        "data_dir": data_dir,
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 64,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


class ServerThread:
    """uvicorn serving `create_app(settings)` on a free port of 127.0.0.1, in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.sock = socket.create_server((LOCAL_HOST, 0))
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.base = f"http://{LOCAL_HOST}:{self.sock.getsockname()[1]}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + SERVER_START_S
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)  # polling for the server to start
        assert self.server.started, "the service did not start"
        return self.base

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=SERVER_START_S)
        self.sock.close()


@pytest.fixture
def web_service(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    settings = web_settings(sqlite_url, tmp_path / "data")
    with ServerThread(settings) as base:
        yield base, settings


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no {CHROMIUM}: run `bash scripts/browser.sh install`")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class WebPage:
    """A page in one language and width, and every URL it asked for."""

    page: Page
    context: BrowserContext
    lang: str
    width: int
    requests: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    async def shoot(self, name: str) -> Path:
        """A full-page screenshot: var/test-artifacts/screens/<lang>/<width>/<name>.png."""
        path = SCREENS / self.lang / str(self.width) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    def outside_requests(self) -> list[str]:
        hosts = [u for u in self.requests if urlsplit(u).hostname not in (LOCAL_HOST, None)]
        return hosts + self.refused


OpenPage = Callable[..., Awaitable[WebPage]]


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[OpenPage]:
    contexts: list[BrowserContext] = []

    async def _open(lang: str = "en", width: int = DESK_WIDTH, javascript: bool = True) -> WebPage:
        context = await browser.new_context(
            java_script_enabled=javascript,
            viewport={"width": width, "height": HEIGHTS.get(width, 800)},
            extra_http_headers={"Accept-Language": ACCEPT_LANGUAGE[lang]},
            locale="zh-CN" if lang == "zh" else "en-GB",
        )
        contexts.append(context)
        page = await context.new_page()
        web_page = WebPage(page, context, lang, width)

        async def guard(route: Route) -> None:
            url = route.request.url
            if urlsplit(url).hostname == LOCAL_HOST or url.startswith(("data:", "about:")):
                await route.continue_()
            else:
                web_page.refused.append(url)
                await route.abort()

        page.on("request", lambda request: web_page.requests.append(request.url))
        await context.route("**/*", guard)
        return web_page

    yield _open
    for context in contexts:
        await context.close()
