"""Test harness for the clearing service: the real app (lifespan run), an httpx client over ASGI,
seeded participants/terminals/tokens, and a terminal that signs its requests.

Imported explicitly by the service tests (not a conftest, so it cannot clash with others').
Identifiers are random per test, so tests share one PostgreSQL database without interfering.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI

from clearing.api.app import create_app
from clearing.auth.models import Role
from clearing.registry import service as registry_service
from clearing.registry.models import ParticipantKind, TerminalKind
from clearing.registry.schemas import ParticipantCreate, TerminalCreate
from clearing.settings import ESCROW_ACCOUNT_DEFAULT, Settings
from terminals.signing import TerminalCredential, signed_headers

LIST_KEY_HEX = "11" * 32


def random_terminal_id() -> str:
    return secrets.token_hex(6).upper()


def random_card_no() -> str:
    return "31" + "".join(str(secrets.randbelow(10)) for _ in range(14))


def random_code(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


@asynccontextmanager
async def running_app(
    url: str, data_dir: Path, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = Settings(
        database_url=url, data_dir=data_dir, list_signing_key=LIST_KEY_HEX, **overrides
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://clearing.test"
        ) as client:
            yield app, client


@dataclass
class SignedTerminal:
    """A terminal as the protocol describes it: signs every request with its Ed25519 key."""

    terminal_id: str
    key: Ed25519PrivateKey
    client: httpx.AsyncClient
    next_seq: int = 1
    batches: int = 0
    log: list[httpx.Response] = field(default_factory=list)

    def headers(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        nonce: str | None = None,
        ts: int | None = None,
    ) -> dict[str, str]:
        """The RFC 9421 headers of the terminals package's signer; `ts` is `created`."""
        ts = int(time.time()) if ts is None else ts
        url = f"{self.client.base_url}".rstrip("/") + path
        credential = TerminalCredential(self.terminal_id, self.key)
        headers = signed_headers(credential, method, url, body, ts, nonce)
        return {**headers, "Content-Type": "application/json"}

    async def post_batch(self, body: bytes, *, path_terminal: str | None = None) -> httpx.Response:
        path = f"/v1/terminals/{path_terminal or self.terminal_id}/batches"
        return await self.client.post(path, content=body, headers=self.headers("POST", path, body))

    async def get_list(self, kind: str, since: int) -> httpx.Response:
        path = f"/v1/terminals/{self.terminal_id}/{kind}-list?since={since}"
        return await self.client.get(path, headers=self.headers("GET", path, b""))


def tap_record(
    card_no: str,
    terminal_seq: int,
    card_counter: int,
    *,
    amount_fen: int = 200,
    balance: int = 10_000,
) -> dict[str, Any]:
    return {
        "kind": "purchase",
        "status": "complete",
        "terminal_seq": terminal_seq,
        "card_no": card_no,
        "card_counter": card_counter,
        "txn_type": 6,
        "amount_fen": amount_fen,
        "balance_before_fen": balance,
        "balance_after_fen": balance - amount_fen,
        "occurred_at": datetime(2026, 11, 28, 8, 0, terminal_seq % 60, tzinfo=UTC)
        .isoformat()
        .replace("+00:00", "Z"),
        "tac": secrets.token_hex(4).upper(),
        "card_type": "adult",
        "rider_category": "adult",
        "full_fare_fen": amount_fen,
        "fare_rule": "flat-200",
        "route_id": "12",
        "stop_id": "S3",
        "insured_fen": 0,
        "visit_id": None,
        "load_id": None,
        "offline_fallback": False,
        "deny_list_version": 0,
        "action_list_version": 0,
    }


def batch_body(batch_id: str, records: list[dict[str, Any]]) -> bytes:
    return json.dumps({"batch_id": batch_id, "records": records}).encode()


@dataclass
class World:
    """One participant (bus operator) with one terminal, plus tokens for every role."""

    app: FastAPI
    client: httpx.AsyncClient
    participant: str
    terminal: SignedTerminal
    tokens: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def add_terminal(self, participant: str | None = None) -> SignedTerminal:
        key = Ed25519PrivateKey.generate()
        terminal_id = random_terminal_id()
        async with self.app.state.sessionmaker() as session:
            await registry_service.register_terminal(
                session,
                TerminalCreate(
                    terminal_id=terminal_id,
                    participant=participant or self.participant,
                    kind=TerminalKind.BUS,
                    line="12",
                    public_key=public_hex(key),
                ),
            )
            await session.commit()
        return SignedTerminal(terminal_id, key, self.client)

    async def add_participant(self, code: str | None = None) -> str:
        code = code or random_code("bus")
        async with self.app.state.sessionmaker() as session:
            await registry_service.create_participant(
                session,
                ParticipantCreate(
                    code=code,
                    name=f"Bus company {code}",
                    kind=ParticipantKind.BUS_OPERATOR,
                    commission_bp=150,
                    bank_account="6222020200112233445",
                    bank_name="ICBC Plateau City",
                ),
                escrow_account=ESCROW_ACCOUNT_DEFAULT,
            )
            await session.commit()
        return code

    async def token(self, role: Role, subject: str | None) -> str:
        async with self.app.state.sessionmaker() as session:
            token, _ = await registry_service.issue_token(
                session, role, subject=subject, label="test"
            )
            await session.commit()
        return token


@asynccontextmanager
async def world(url: str, data_dir: Path, **overrides: Any) -> AsyncIterator[World]:
    async with running_app(url, data_dir, **overrides) as (app, client):
        w = World(app, client, "", None, {})  # type: ignore[arg-type]
        w.participant = await w.add_participant()
        w.terminal = await w.add_terminal()
        w.tokens = {
            "admin": await w.token(Role.ADMIN, "alice"),
            "finance": await w.token(Role.FINANCE, "fred"),
            "operator": await w.token(Role.OPERATOR, w.participant),
            "resident": await w.token(Role.RESIDENT, random_code("resident")),
        }
        yield w


SERVER_STARTUP_TIMEOUT_S = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def issue_token_in_subprocess(env: dict[str, str], role: Role, subject: str) -> str:
    """A token issued by a separate process (no event loop shared with the tests)."""
    script = (
        "import asyncio\n"
        "from clearing.cli.registry_cmd import _in_transaction\n"
        "from clearing.registry import service\n"
        "from clearing.auth.models import Role\n"
        "async def go(s, _l):\n"
        f"    token, _ = await service.issue_token(s, Role('{role.value}'), subject={subject!r}, label='test')\n"
        "    return token\n"
        "import os\n"
        "url = os.environ['ONECARD_DATABASE_URL']\n"
        "print(asyncio.run(_in_transaction(url, go, with_ledger=False)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


@contextmanager
def uvicorn_server(url: str, data_dir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`uvicorn clearing.api.app:create_app` in a subprocess on a migrated database; yields its
    base URL and environment once /healthz answers (polled, never a fixed wait)."""
    env = {
        **os.environ,
        "ONECARD_DATABASE_URL": url,
        "ONECARD_DATA_DIR": str(data_dir),
        "ONECARD_LIST_SIGNING_KEY": LIST_KEY_HEX,
    }
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "clearing.api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                assert process.stderr is not None
                raise RuntimeError(f"uvicorn exited: {process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # polling for readiness
        yield base, env
    finally:
        process.terminate()
        process.wait(timeout=10)
