"""A small, protocol-faithful clearing service for terminal tests (docs/terminal-protocol.md).

It checks RFC 9421 signatures with the `http-message-signatures` library's own verifier (not our
clearing code): created window, nonce, keyid = terminal id, covered components and the body's
Content-Digest. It stores batches once by batch_id (409 on a different body), reports sequence gaps, serves signed deny/action list deltas and clinic splits. It can be
told to drop the connection after storing a batch and before answering (the lost-ack case).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)

from terminals.signing import canonical_list_bytes


@dataclass
class FakeState:
    terminals: dict[str, str] = field(default_factory=dict)  # terminal id -> public key hex
    batches: dict[tuple[str, str], bytes] = field(
        default_factory=dict
    )  # (terminal, batch id) -> sha256
    records: dict[tuple[str, int], dict] = field(
        default_factory=dict
    )  # (terminal, seq) -> record (latest)
    record_posts: int = 0
    nonces: set[str] = field(default_factory=set)
    deny_versions: list[tuple[int, set[str]]] = field(default_factory=lambda: [(0, set())])
    action_versions: list[tuple[int, dict[str, dict]]] = field(default_factory=lambda: [(0, {})])
    drop_after_store: int = 0  # how many next batch POSTs to store and then drop unanswered
    fail_with_503: int = 0
    splits: dict[str, tuple[int, str, str]] = field(
        default_factory=dict
    )  # card -> (insured ‰, scheme, rule)
    requests: list[str] = field(default_factory=list)


class _Verifier(HTTPMessageVerifier):
    max_clock_skew = timedelta(seconds=300)


@dataclass(frozen=True)
class _Received:
    method: str
    url: str
    headers: object


class FakeClearing:
    def __init__(self) -> None:
        self.state = FakeState()
        self.list_key = Ed25519PrivateKey.generate()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def list_public_key(self) -> str:
        return self.list_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    def __enter__(self) -> FakeClearing:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- administration by the test ------------------------------------------------------------

    def register(self, terminal_id: str, public_key_hex: str) -> None:
        self.state.terminals[terminal_id] = public_key_hex

    def deny(self, added: set[str] = frozenset(), removed: set[str] = frozenset()) -> int:
        with self.lock:
            version, cards = self.state.deny_versions[-1]
            self.state.deny_versions.append((version + 1, (cards | set(added)) - set(removed)))
            return version + 1

    def add_load(self, load_id: str, card_no: str, amount_fen: int, expires_at: str) -> int:
        with self.lock:
            version, loads = self.state.action_versions[-1]
            new = dict(loads)
            new[load_id] = {
                "load_id": load_id,
                "card_no": card_no,
                "amount_fen": amount_fen,
                "expires_at": expires_at,
            }
            self.state.action_versions.append((version + 1, new))
            return version + 1

    # --- protocol ---------------------------------------------------------------------------

    def _answer(self, handler: BaseHTTPRequestHandler, status: int, body: dict) -> None:
        raw = json.dumps(body).encode()
        handler.send_response(status)
        content_type = "application/problem+json" if status >= 400 else "application/json"
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)

    def _problem(self, handler: BaseHTTPRequestHandler, status: int, code: str) -> None:
        self._answer(
            handler,
            status,
            {"type": "about:blank", "title": code, "status": status, "detail": code, "code": code},
        )

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        self.state.requests.append(f"{method} {handler.path}")
        if self.state.fail_with_503 > 0:
            self.state.fail_with_503 -= 1
            return self._problem(handler, 503, "unavailable")
        terminal = handler.headers.get("Onecard-Terminal-Id", "")
        nonce = self._verified_nonce(handler, method, terminal, body)
        if nonce is None:
            return self._problem(handler, 401, "signature_invalid")
        with self.lock:
            if nonce in self.state.nonces:
                return self._problem(handler, 401, "nonce_replayed")
            self.state.nonces.add(nonce)
        parts = urlsplit(handler.path)
        segments = parts.path.strip("/").split("/")
        if segments[:2] != ["v1", "terminals"] or len(segments) < 4 or segments[2] != terminal:
            return self._problem(handler, 403, "terminal_mismatch")
        action = "/".join(segments[3:])
        if method == "POST" and action == "batches":
            return self._batch(handler, terminal, body)
        if method == "GET" and action in ("deny-list", "action-list"):
            since = int(parse_qs(parts.query).get("since", ["0"])[0])
            return self._list(handler, action.split("-")[0], since)
        if method == "POST" and action == "clinic/splits":
            return self._split(handler, json.loads(body))
        return self._problem(handler, 404, "not_found")

    def _verified_nonce(
        self, handler: BaseHTTPRequestHandler, method: str, terminal: str, body: bytes
    ) -> str | None:
        """The signed nonce if the RFC 9421 signature verifies for `terminal`, else None."""
        key = self.state.terminals.get(terminal)
        if key is None:
            return None
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key))
        verifier = _Verifier(
            signature_algorithm=algorithms.ED25519,
            key_resolver=MappingKeyResolver(public_keys={terminal: public}, private_keys={}),
        )
        required = ["@method", "@path", "onecard-terminal-id"]
        if "?" in handler.path:
            required.append("@query")
        received = _Received(method, self.url + handler.path, handler.headers)
        try:
            [result] = verifier.verify(
                received, max_age=timedelta(0), require_components=required, body=body
            )
        except (InvalidSignature, HTTPMessageSignaturesException, ValueError):
            return None
        if result.parameters.get("keyid") != terminal or not result.nonce:
            return None
        return str(result.nonce)

    def _batch(self, handler: BaseHTTPRequestHandler, terminal: str, body: bytes) -> None:
        batch = json.loads(body)
        digest = hashlib.sha256(body).digest()
        with self.lock:
            known = self.state.batches.get((terminal, batch["batch_id"]))
            if known is not None and known != digest:
                return self._problem(handler, 409, "batch_conflict")
            duplicate = known is not None
            if not duplicate:
                self.state.batches[(terminal, batch["batch_id"])] = digest
                for record in batch["records"]:
                    self.state.record_posts += 1
                    self.state.records[(terminal, record["terminal_seq"])] = record
            drop = self.state.drop_after_store > 0
            if drop:
                self.state.drop_after_store -= 1
            seqs = sorted(seq for (t, seq) in self.state.records if t == terminal)
        if drop:
            # Stored durably, then the connection dies before the acknowledgement is written.
            handler.close_connection = True
            handler.connection.close()
            return None
        gaps = []
        for a, b in zip(seqs, seqs[1:], strict=False):
            if b > a + 1:
                gaps.append({"from_seq": a + 1, "to_seq": b - 1})
        return self._answer(
            handler,
            200,
            {
                "batch_id": batch["batch_id"],
                "records": len(batch["records"]),
                "duplicate": duplicate,
                "received_at": datetime.now(UTC).isoformat(),
                "sequence_gaps": gaps,
            },
        )

    def _list(self, handler: BaseHTTPRequestHandler, kind: str, since: int) -> None:
        with self.lock:
            versions = self.state.deny_versions if kind == "deny" else self.state.action_versions
            version, current = versions[-1]
            old = next((content for v, content in versions if v == since), None)
        if since == 0 or old is None:
            full = True
            if kind == "deny":
                added, removed = sorted(current), []
            else:
                added, removed = [current[k] for k in sorted(current)], []
        else:
            full = False
            if kind == "deny":
                added, removed = sorted(current - old), sorted(old - current)
            else:
                added = [current[k] for k in sorted(set(current) - set(old))]
                removed = sorted(set(old) - set(current))
        body = {
            "list": kind,
            "since": since,
            "version": version,
            "added": added,
            "removed": removed,
            "full": full,
            "signed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        body["signature"] = self.list_key.sign(canonical_list_bytes(body)).hex()
        self._answer(handler, 200, body)

    def _split(self, handler: BaseHTTPRequestHandler, visit: dict) -> None:
        share = self.state.splits.get(visit["card_no"])
        if share is None:
            return self._problem(handler, 404, "not_insured")
        permille, scheme, rule = share
        insured = visit["bill_fen"] * permille // 1000
        self._answer(
            handler,
            200,
            {
                "visit_id": visit["visit_id"],
                "card_no": visit["card_no"],
                "scheme": scheme,
                "bill_fen": visit["bill_fen"],
                "insured_fen": insured,
                "patient_fen": visit["bill_fen"] - insured,
                "rule": rule,
            },
        )
