"""An outside client of the clearing service, as independent implementers meet it.

It knows only what is published: `onecard` on the command line (to migrate, serve and issue the
first tokens, as the README says), the OpenAPI schema at `/openapi.json` and
docs/terminal-protocol.md. It imports nothing of `clearing`, `terminals` or `cardio` (nor any
HTTP-signatures library): its RFC 9421 request signing (the signature base built by hand, Ed25519
from `cryptography`) and list-signature checks are written here from the protocol page, and
every answer is checked against the schema the server publishes. The server is `onecard serve`
in its own process on a PostgreSQL database of these tests alone.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema_rs
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

pytestmark = pytest.mark.postgres

ONECARD = str(Path(sys.executable).with_name("onecard"))
STARTUP_TIMEOUT_S = 60
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


# -- the server, started as the README says ---------------------------------------------------


def _fresh_database(base_url: str) -> str:
    parsed = make_url(base_url)
    name = f"{parsed.database}_outside"

    async def recreate() -> None:
        admin = create_async_engine(
            parsed.set(database="postgres").render_as_string(hide_password=False),
            isolation_level="AUTOCOMMIT",
        )
        try:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            await admin.dispose()

    asyncio.run(recreate())
    return parsed.set(database=name).render_as_string(hide_password=False)


def _onecard(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([ONECARD, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _token(env: dict[str, str], role: str, subject: str) -> str:
    return _onecard(env, "registry", "token", "issue", role, "--subject", subject).split()[-1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    base: str
    env: dict[str, str]
    schema: dict[str, Any]
    settlement_dir: Path
    tokens: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    base_url = os.environ.get(
        "ONECARD_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/onecard_test"
    )
    home = tmp_path_factory.mktemp("outside")
    env = {
        **os.environ,
        "ONECARD_DATABASE_URL": _fresh_database(base_url),
        "ONECARD_DATA_DIR": str(home),
        "ONECARD_SETTLEMENT_DIR": str(home / "instructions"),
        "ONECARD_KEY_STORE": str(home / "keys.json"),
    }
    env.pop("ONECARD_LIST_SIGNING_KEY", None)
    _onecard(env, "db", "upgrade")
    cleared = subprocess.run(
        [ONECARD, "clear"], env=env, capture_output=True, text=True, timeout=120
    )
    # nothing staged yet: nothing to clear, and no issuer keys are needed to say so
    said = " ".join((cleared.stdout + cleared.stderr).split())  # as read, wherever it goes
    assert cleared.returncode == 0 and "nothing to clear" in said, cleared
    assert "Traceback" not in cleared.stdout + cleared.stderr
    _onecard(env, "card", "keys", "--out", env["ONECARD_KEY_STORE"])
    port = _free_port()
    server = subprocess.Popen(
        [ONECARD, "serve", "--port", str(port), "--no-migrate", "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if server.poll() is not None:
                assert server.stderr is not None
                raise RuntimeError(server.stderr.read().decode()[-2000:])
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("onecard serve did not become ready")
            time.sleep(0.1)  # polling for readiness, not waiting for an effect
        schema = httpx.get(f"{base}/openapi.json").json()
        svc = Service(base, env, schema, home / "instructions")
        svc.tokens["admin"] = _token(env, "admin", "root")
        svc.tokens["finance"] = _token(env, "finance", "fiona")
        yield svc
    finally:
        server.terminate()
        server.wait(timeout=20)


# -- checking answers against the published schema ---------------------------------------------


def _operation(schema: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """The OpenAPI operation that a concrete path matches (templates compared segment-wise)."""
    segments = path.split("?")[0].strip("/").split("/")
    for template, operations in schema["paths"].items():
        parts = template.strip("/").split("/")
        if len(parts) == len(segments) and all(
            p == s or (p.startswith("{") and p.endswith("}"))
            for p, s in zip(parts, segments, strict=True)
        ):
            if method.lower() in operations:
                return operations[method.lower()]
    raise AssertionError(f"{method} {path} is not in the published schema")


def check(schema: dict[str, Any], response: httpx.Response) -> httpx.Response:
    """The answer is documented: its status is listed for the operation, an error is an RFC 9457
    problem, and a JSON body validates against the schema the operation publishes."""
    request = response.request
    operation = _operation(schema, request.method, request.url.raw_path.decode())
    status = str(response.status_code)
    documented = operation["responses"]
    assert status in documented or "default" in documented, (
        f"{request.method} {request.url.path} answered {status}, documented only "
        f"{sorted(documented)}"
    )
    content_type = response.headers.get("content-type", "")
    if response.status_code >= 400:
        assert content_type.startswith("application/problem+json"), content_type
        body = response.json()
        assert PROBLEM_FIELDS <= set(body), body
        assert body["status"] == response.status_code
        assert all(isinstance(body[key], str) and body[key] for key in PROBLEM_FIELDS - {"status"})
    spec = documented.get(status, documented.get("default", {}))
    content = spec.get("content", {})
    media = content.get("application/json") or content.get("application/problem+json")
    if media and "schema" in media and content_type.endswith("json"):
        validator = jsonschema_rs.validator_for(
            {**media["schema"], "components": schema["components"]}
        )
        errors = [str(error) for error in validator.iter_errors(response.json())]
        assert not errors, (request.method, request.url.path, errors[:3])
    return response


# -- a terminal, signing as docs/terminal-protocol.md says (RFC 9421 §2.5, by hand) -----------

REQUIRED = ("@method", "@path", "@query", "content-digest", "onecard-terminal-id")


def _public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass
class Terminal:
    terminal_id: str
    key: Ed25519PrivateKey
    base: str

    def signed_headers(
        self,
        method: str,
        path_with_query: str,
        body: bytes,
        *,
        ts: int | None = None,
        nonce: str | None = None,
        covered: tuple[str, ...] | None = None,
    ) -> dict[str, str]:
        """Onecard-Terminal-Id, Content-Digest (with a body), Signature-Input and Signature."""
        created = int(time.time()) if ts is None else ts
        nonce = nonce or secrets.token_hex(16)
        target = urlsplit(self.base + path_with_query)
        headers = {"Onecard-Terminal-Id": self.terminal_id}
        values = {
            "@method": method,
            "@path": target.path,
            "@query": f"?{target.query}",
            "onecard-terminal-id": self.terminal_id,
        }
        if body:
            headers["Content-Digest"] = f"sha-256=:{_b64(hashlib.sha256(body).digest())}:"
            values["content-digest"] = headers["Content-Digest"]
        if covered is None:  # what the protocol page requires, nothing left out
            covered = tuple(c for c in REQUIRED if c in values and (c != "@query" or target.query))
        names = " ".join(f'"{name}"' for name in covered)
        params = (
            f'({names});created={created};keyid="{self.terminal_id}";nonce="{nonce}";alg="ed25519"'
        )
        lines = [f'"{name}": {values[name]}' for name in covered]
        signature_base = "\n".join([*lines, f'"@signature-params": {params}'])
        signature = self.key.sign(signature_base.encode("ascii"))
        headers["Signature-Input"] = f"sig1={params}"
        headers["Signature"] = f"sig1=:{_b64(signature)}:"
        return headers

    def send(
        self, method: str, path_with_query: str, payload: Any = None, **sign: Any
    ) -> httpx.Response:
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = self.signed_headers(method, path_with_query, body, **sign)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        return httpx.request(method, self.base + path_with_query, content=body, headers=headers)


def tap(card_no: str, seq: int, counter: int, *, amount_fen: int = 200) -> dict[str, Any]:
    """A tap record with every field of the protocol's table (shape only: the TAC is not real,
    so clearing quarantines it later; the upload must still be stored)."""
    return {
        "kind": "purchase",
        "status": "complete",
        "terminal_seq": seq,
        "card_no": card_no,
        "card_counter": counter,
        "txn_type": 6,
        "amount_fen": amount_fen,
        "balance_before_fen": 10_000,
        "balance_after_fen": 10_000 - amount_fen,
        "occurred_at": (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tac": secrets.token_hex(4).upper(),
        "card_type": "adult",
        "rider_category": "adult",
        "full_fare_fen": amount_fen,
        "fare_rule": "flat",
        "route_id": "12",
        "stop_id": "S1",
        "insured_fen": 0,
        "visit_id": None,
        "load_id": None,
        "offline_fallback": False,
        "deny_list_version": 0,
        "action_list_version": 0,
    }


# -- a city set up through the API by its admin ------------------------------------------------


@dataclass
class City:
    svc: Service
    bus_op: str
    other_op: str
    bus: Terminal
    other_bus: Terminal
    clinic: Terminal
    resident: str
    card: str
    neighbour_card: str

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.svc.tokens[role]}"}

    def call(self, method: str, path: str, role: str | None = None, **kw: Any) -> httpx.Response:
        headers = self.auth(role) if role else {}
        return check(
            self.svc.schema, httpx.request(method, self.svc.base + path, headers=headers, **kw)
        )


def _enum(schema: dict[str, Any], name: str) -> list[str]:
    return schema["components"]["schemas"][name]["enum"]


def _resident_with_card(service: Service, card_no: str, balance_fen: int) -> str:
    """A resident signs up and logs in over HTTP and links the card (its balance proves it);
    their access token. A resident reaches the cards linked to them, not by the holder id."""
    login = {"login": f"res-{secrets.token_hex(4)}@example.cn", "password": "tram lines at dawn"}
    signed_up = check(service.schema, httpx.post(service.base + "/v1/residents", json=login))
    assert signed_up.status_code == 201, signed_up.text
    logged_in = check(service.schema, httpx.post(service.base + "/v1/auth/login", json=login))
    token = logged_in.json()["access_token"]
    linked = httpx.post(
        service.base + "/v1/me/cards",
        json={"card_no": card_no, "proof": {"kind": "balance", "amount_fen": balance_fen}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert check(service.schema, linked).status_code == 201, linked.text
    return token


@pytest.fixture(scope="module")
def city(service: Service) -> City:
    schema = service.schema
    # what to send is read from the published schema, not from the server's code
    assert "bus_operator" in _enum(schema, "ParticipantKind")
    assert {"bus", "clinic"} <= set(_enum(schema, "TerminalKind"))
    tag = secrets.token_hex(3)
    admin = {"Authorization": f"Bearer {service.tokens['admin']}"}

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = check(schema, httpx.post(service.base + path, json=body, headers=admin))
        assert answer.status_code == 201, answer.text
        return answer.json()

    codes = []
    for code, kind in ((f"bus-{tag}", "bus_operator"), (f"bus2-{tag}", "bus_operator")):
        post(
            "/v1/participants",
            {
                "code": code,
                "name": f"Bus {code}",
                "kind": kind,
                "commission_bp": 100,
                "bank_account": "6222020200112233445",
                "bank_name": "City Bank",
            },
        )
        codes.append(code)
    clinic_code = f"clinic-{tag}"
    post(
        "/v1/participants",
        {
            "code": clinic_code,
            "name": "Clinic",
            "kind": "clinic",
            "commission_bp": 30,
            "bank_account": "6222020200112233446",
            "bank_name": "City Bank",
        },
    )
    terminals = []
    for owner, kind in ((codes[0], "bus"), (codes[1], "bus"), (clinic_code, "clinic")):
        key = Ed25519PrivateKey.generate()
        terminal_id = secrets.token_hex(6).upper()
        post(
            "/v1/terminals",
            {
                "terminal_id": terminal_id,
                "participant": owner,
                "kind": kind,
                "line": "12",
                "public_key": _public_hex(key),
            },
        )
        terminals.append(Terminal(terminal_id, key, service.base))
    resident = f"res-{tag}"
    cards = []
    for holder in (resident, f"other-{tag}"):
        card_no = "39" + "".join(str(secrets.randbelow(10)) for _ in range(14))
        post(
            "/v1/cards",
            {
                "card_no": card_no,
                "card_type": "adult",
                "holder_id": holder,
                "holder_name": "Holder",
                "scheme": "urban",
                "deposit_fen": 2000,
                "first_load_fen": 5000,
            },
        )
        cards.append(card_no)
    service.tokens["operator"] = _token(service.env, "operator", codes[0])
    service.tokens["resident"] = _resident_with_card(service, cards[0], 5000)
    return City(service, codes[0], codes[1], *terminals, resident, *cards)


# -- the tests ---------------------------------------------------------------------------------


def test_every_operation_documents_its_problem_answers(service: Service) -> None:
    """A client generated from the schema knows that errors are problems, for every route."""
    for path, operations in service.schema["paths"].items():
        for method, operation in operations.items():
            if path in ("/healthz", "/openapi.json"):
                continue
            errors = {s for s in operation["responses"] if s.startswith(("4", "5", "d"))}
            assert errors, f"{method.upper()} {path} documents no error answer"
            for status in errors:
                content = operation["responses"][status].get("content", {})
                assert set(content) == {"application/problem+json"}, (method, path, status)
                assert content["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }


def test_a_terminal_uploads_signed_batches_exactly_as_the_protocol_says(city: City) -> None:
    bus = city.bus
    path = f"/v1/terminals/{bus.terminal_id}/batches"
    batch = {"batch_id": f"{bus.terminal_id}-00000001", "records": [tap(city.card, 1, 0)]}
    first = check(city.svc.schema, bus.send("POST", path, batch))
    assert first.status_code == 200, first.text
    assert first.json()["duplicate"] is False and first.json()["records"] == 1
    again = check(city.svc.schema, bus.send("POST", path, batch))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    # a gap: serials 2..4 missing
    later = {"batch_id": f"{bus.terminal_id}-00000002", "records": [tap(city.card, 5, 1)]}
    gapped = check(city.svc.schema, bus.send("POST", path, later))
    assert gapped.json()["sequence_gaps"] == [{"from_seq": 2, "to_seq": 4}]
    # RFC 9421 lets the signer choose the order of the covered components
    reordered = {"batch_id": f"{bus.terminal_id}-00000003", "records": [tap(city.card, 6, 2)]}
    order = ("onecard-terminal-id", "content-digest", "@path", "@method")
    other_order = check(city.svc.schema, bus.send("POST", path, reordered, covered=order))
    assert other_order.status_code == 200, other_order.text
    changed = {**batch, "records": [tap(city.card, 1, 0, amount_fen=300)]}
    conflict = check(city.svc.schema, bus.send("POST", path, changed))
    assert conflict.status_code == 409


def test_refused_terminal_requests_are_problems_and_store_nothing(city: City) -> None:
    bus = city.bus
    path = f"/v1/terminals/{bus.terminal_id}/batches"
    schema = city.svc.schema

    def batch(n: int) -> dict[str, Any]:
        return {"batch_id": f"refused-{n}", "records": [tap(city.card, 100 + n, 50 + n)]}

    body = json.dumps(batch(1)).encode()
    unsigned = httpx.post(city.svc.base + path, content=body)
    assert check(schema, unsigned).status_code == 401
    assert "WWW-Authenticate" in unsigned.headers
    headers = bus.signed_headers("POST", path, body)
    raw = bytearray(base64.b64decode(headers["Signature"].split(":")[1]))
    raw[-1] ^= 0x01
    headers["Signature"] = f"sig1=:{_b64(bytes(raw))}:"
    forged = check(schema, httpx.post(city.svc.base + path, content=body, headers=headers))
    assert forged.status_code == 401 and forged.json()["code"] == "signature_invalid"
    stale = bus.send("POST", path, batch(2), ts=int(time.time()) - 301)
    assert check(schema, stale).status_code == 401
    assert stale.json()["code"] == "signature_stale"
    nonce = secrets.token_hex(16)
    content = json.dumps(batch(3)).encode()
    signed = bus.signed_headers("POST", path, content, nonce=nonce)
    assert httpx.post(city.svc.base + path, content=content, headers=signed).status_code == 200
    replayed = httpx.post(city.svc.base + path, content=content, headers=signed)
    assert check(schema, replayed).status_code == 401
    assert replayed.json()["code"] == "signature_nonce_replayed"
    other_path = f"/v1/terminals/{city.other_bus.terminal_id}/batches"
    as_other = bus.send("POST", other_path, batch(4))
    assert check(schema, as_other).status_code == 403
    # a body that is not a batch: 422 naming the field, after the signature
    bad = bus.send("POST", path, {"batch_id": "bad-1", "records": [{"kind": "purchase"}]})
    assert check(schema, bad).status_code == 422 and bad.json()["errors"]
    too_many = {"batch_id": "big-1", "records": [tap(city.card, 1, 0)] * 5001}
    assert check(schema, bus.send("POST", path, too_many)).status_code == 413
    # stored: the three accepted batches only (admin's view of this terminal's batches)
    listed = city.call("GET", f"/v1/batches?terminal_id={bus.terminal_id}", "admin")
    ids = {b["batch_id"] for b in listed.json()}
    assert not ids & {"refused-1", "refused-2", "refused-4", "bad-1", "big-1"}, ids
    assert "refused-3" in ids


def _verify_list(public_hex: str, body: dict[str, Any]) -> None:
    unsigned = {key: value for key, value in body.items() if key != "signature"}
    message = json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
    key.verify(bytes.fromhex(body["signature"]), message)  # raises if it does not verify


def test_lists_are_signed_versioned_deltas(city: City) -> None:
    public = city.call("GET", "/v1/lists/public-key").json()["public_key"]
    bus = city.bus
    # a blocked card first, so the terminal holds a version past 0 (0 means "send it all")
    spare = "38" + "".join(str(secrets.randbelow(10)) for _ in range(14))
    issued = city.call(
        "POST",
        "/v1/cards",
        "admin",
        json={
            "card_no": spare,
            "card_type": "adult",
            "holder_id": "spare",
            "holder_name": "Spare",
            "deposit_fen": 0,
            "first_load_fen": 0,
        },
    )
    assert issued.status_code == 201, issued.text
    block = city.call("POST", f"/v1/cards/{spare}/block", "admin", json={"reason": "test"})
    assert block.status_code == 200, block.text
    deny_path = f"/v1/terminals/{bus.terminal_id}/deny-list?since=0"
    full = check(city.svc.schema, bus.send("GET", deny_path))
    assert full.status_code == 200, full.text
    body = full.json()
    assert body["list"] == "deny" and body["full"] is True and spare in body["added"]
    _verify_list(public, body)
    tampered = {**body, "added": [*body["added"], city.neighbour_card]}
    with pytest.raises(InvalidSignature):
        _verify_list(public, tampered)
    # the resident reports their card lost: the next delta names it, and only the change
    lost = city.call(
        "POST", f"/v1/cards/{city.card}/report-lost", "resident", json={"reason": "lost it"}
    )
    assert lost.status_code == 200, lost.text
    since = body["version"]
    delta = check(
        city.svc.schema,
        bus.send("GET", f"/v1/terminals/{bus.terminal_id}/deny-list?since={since}"),
    ).json()
    _verify_list(public, delta)
    assert delta["full"] is False and delta["since"] == since, (body, delta)
    assert delta["added"] == [city.card] and delta["version"] > since
    action = check(
        city.svc.schema,
        bus.send("GET", f"/v1/terminals/{bus.terminal_id}/action-list?since=0"),
    ).json()
    assert action["list"] == "action"
    _verify_list(public, action)
    # a list request signed over another query is refused: the query is signed too
    headers = bus.signed_headers("GET", f"/v1/terminals/{bus.terminal_id}/deny-list?since=0", b"")
    moved = httpx.get(
        f"{city.svc.base}/v1/terminals/{bus.terminal_id}/deny-list?since=1", headers=headers
    )
    assert check(city.svc.schema, moved).status_code == 401
    assert moved.json()["code"] == "signature_invalid"


def test_clinic_split_as_the_protocol_says(city: City) -> None:
    clinic = city.clinic
    path = f"/v1/terminals/{clinic.terminal_id}/clinic/splits"
    visit = {
        "visit_id": f"V-{secrets.token_hex(4)}",
        "card_no": city.neighbour_card,
        "bill_fen": 30_000,
        "visit_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    split = check(city.svc.schema, clinic.send("POST", path, visit))
    assert split.status_code == 200, split.text
    body = split.json()
    assert body["insured_fen"] + body["patient_fen"] == body["bill_fen"] == 30_000
    assert body["scheme"] == "urban" and body["insured_fen"] > 0
    assert check(city.svc.schema, clinic.send("POST", path, visit)).json() == body
    other_bill = check(city.svc.schema, clinic.send("POST", path, {**visit, "bill_fen": 1}))
    assert other_bill.status_code == 409
    unknown = {**visit, "visit_id": "V-unknown", "card_no": "3999999999999999"}
    assert check(city.svc.schema, clinic.send("POST", path, unknown)).status_code == 404
    bad_id = {**visit, "visit_id": "V 1/2"}
    assert check(city.svc.schema, clinic.send("POST", path, bad_id)).status_code == 422
    blocked_card = "37" + "".join(str(secrets.randbelow(10)) for _ in range(14))
    issued = city.call(
        "POST",
        "/v1/cards",
        "admin",
        json={
            "card_no": blocked_card,
            "card_type": "adult",
            "holder_id": "blocked",
            "holder_name": "Blocked",
            "scheme": "urban",
            "deposit_fen": 0,
            "first_load_fen": 0,
        },
    )
    assert issued.status_code == 201, issued.text
    city.call("POST", f"/v1/cards/{blocked_card}/block", "admin", json={"reason": "stolen"})
    on_blocked = {**visit, "visit_id": "V-blocked", "card_no": blocked_card}
    assert check(city.svc.schema, clinic.send("POST", path, on_blocked)).status_code == 409
    bus_path = f"/v1/terminals/{city.bus.terminal_id}/clinic/splits"
    assert check(city.svc.schema, city.bus.send("POST", bus_path, visit)).status_code == 403


ROLE_MATRIX = [
    # (method, path, {role: status}); paths use {op}, {other_op}, {card}, {neighbour}, {day}
    ("GET", "/v1/me", {"finance": 200, "operator": 200, "admin": 200, "resident": 200}),
    ("GET", "/v1/participants", {"finance": 200, "operator": 200, "admin": 200, "resident": 403}),
    ("GET", "/v1/participants/{other_op}", {"operator": 404, "finance": 200}),
    ("GET", "/v1/terminals", {"finance": 200, "operator": 200, "admin": 200, "resident": 403}),
    ("GET", "/v1/cards", {"finance": 200, "operator": 403, "admin": 200, "resident": 200}),
    ("GET", "/v1/cards/{neighbour}", {"resident": 404, "operator": 403, "finance": 200}),
    ("GET", "/v1/cards/3000000000000000", {"resident": 404}),
    ("GET", "/v1/cards/{card}", {"resident": 200}),
    ("GET", "/v1/quarantine", {"finance": 200, "admin": 200, "operator": 403, "resident": 403}),
    ("GET", "/v1/quarantine/reasons", {"finance": 200, "operator": 403, "resident": 403}),
    ("GET", "/v1/batches", {"finance": 200, "operator": 200, "resident": 403}),
    ("GET", "/v1/subsidies?from={day}", {"finance": 200, "operator": 403, "resident": 403}),
    ("GET", "/v1/settlements/{day}", {"resident": 403}),
    (
        "GET",
        "/v1/settlements/{day}/statements/{other_op}",
        {"operator": 403, "resident": 403},
    ),
    ("GET", "/v1/lists/deny/coverage", {"finance": 200, "operator": 403, "resident": 403}),
    ("POST", "/v1/settlements/{day}", {"operator": 403, "admin": 403, "resident": 403}),
    # bounded in the schema: a code that no participant could have, a day out of range
    ("GET", "/v1/settlements/{day}/statements/" + "x" * 40, {"finance": 422}),
    ("GET", "/v1/settlements/1900-01-01/statements/{op}", {"finance": 422}),
]


def test_each_role_sees_only_what_it_may(city: City) -> None:
    day = (datetime.now(UTC) - timedelta(days=400)).date().isoformat()
    values = {
        "op": city.bus_op,
        "other_op": city.other_op,
        "card": city.card,
        "neighbour": city.neighbour_card,
        "day": day,
    }
    for method, template, expected in ROLE_MATRIX:
        path = template.format(**values)
        for role, status in expected.items():
            answer = city.call(method, path, role)
            assert answer.status_code == status, (method, path, role, answer.text)
        assert city.call(method, path).status_code == 401, (method, path)
    # what each role sees is its own
    me = city.call("GET", "/v1/me", "operator").json()
    assert me == {"role": "operator", "subject": city.bus_op}
    seen = [p["code"] for p in city.call("GET", "/v1/participants", "operator").json()]
    assert seen == [city.bus_op]
    terminals = city.call("GET", "/v1/terminals", "operator").json()
    assert {t["terminal_id"] for t in terminals} == {city.bus.terminal_id}
    batches = city.call("GET", "/v1/batches", "operator").json()
    assert batches and {b["terminal_id"] for b in batches} == {city.bus.terminal_id}
    cards = city.call("GET", "/v1/cards", "resident").json()
    assert [c["card_no"] for c in cards] == [city.card]
    # writing is the admin's: nobody else registers, blocks or issues
    participant = {
        "code": f"x-{secrets.token_hex(3)}",
        "name": "X",
        "kind": "utility",
        "commission_bp": 1,
        "bank_account": "6222020200112233447",
        "bank_name": "Bank",
    }
    for role in ("finance", "operator", "resident"):
        refused = city.call("POST", "/v1/participants", role, json=participant)
        assert refused.status_code == 403, (role, refused.text)
        blocked = city.call(
            "POST", f"/v1/cards/{city.neighbour_card}/block", role, json={"reason": "x"}
        )
        assert blocked.status_code == 403, (role, blocked.text)
    # a resident may not report another's card lost (nor learn that it exists)
    other_lost = city.call(
        "POST", f"/v1/cards/{city.neighbour_card}/report-lost", "resident", json={"reason": "x"}
    )
    assert other_lost.status_code == 404


def test_settling_through_the_api_writes_the_instruction_files(city: City) -> None:
    day = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    settled = city.call("POST", f"/v1/settlements/{day}", "finance")
    assert settled.status_code == 200, settled.text
    for name in settled.json()["files"]:
        assert (city.svc.settlement_dir / name).is_file(), name
    assert f"settlement-{day}.csv" in settled.json()["files"]
    again = city.call("POST", f"/v1/settlements/{day}", "finance")
    assert again.json()["already_settled"] is True
    operator_view = city.call("GET", f"/v1/settlements/{day}", "operator").json()
    assert all(line["participant_code"] == city.bus_op for line in operator_view["lines"])


def test_forged_uploads_reach_the_quarantine_finance_sees(city: City) -> None:
    bus = city.other_bus
    path = f"/v1/terminals/{bus.terminal_id}/batches"
    records = [tap(city.neighbour_card, 900 + n, 900 + n) for n in range(3)]
    uploaded = bus.send("POST", path, {"batch_id": "forged-1", "records": records})
    assert check(city.svc.schema, uploaded).status_code == 200, uploaded.text
    _onecard(city.svc.env, "clear")
    listed = city.call(
        "GET", f"/v1/quarantine?terminal_id={bus.terminal_id}&reason=bad_tac", "finance"
    ).json()
    assert sorted(row["terminal_seq"] for row in listed) == [900, 901, 902]
    first = listed[0]["id"]
    assert city.call("GET", f"/v1/quarantine/{first}", "operator").status_code == 403
    released = city.call(
        "POST", f"/v1/quarantine/{first}/write-off", "admin", json={"note": "forged"}
    )
    assert released.status_code == 403
    # a write-off asks a second finance officer (POST /v1/approvals: tests/clearing/test_approvals)
    written = city.call(
        "POST", f"/v1/quarantine/{first}/write-off", "finance", json={"note": "forged TAC"}
    )
    assert written.status_code == 409, written.text
    assert written.json()["code"] == "second_person_required"
