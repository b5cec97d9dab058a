"""HTTP client of the terminal side of docs/terminal-protocol.md (httpx, every request signed
per RFC 9421).

Maps transport failures and 5xx to ServiceUnavailable (retry later) and 4xx problems to
UploadRefused (retrying the same request will not help). It never logs bodies or keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from terminals.errors import ServiceUnavailable, TerminalError, UploadRefused
from terminals.journal import Batch
from terminals.signing import TerminalCredential, signed_headers

TIMEOUT_S_DEFAULT = 10.0
CLINIC_TIMEOUT_S_DEFAULT = 3.0  # a patient is waiting at the counter
RESPONSE_BYTES_MAX = 16 * 1024 * 1024
PUBLIC_KEY_PATH = "/v1/lists/public-key"
PUBLIC_KEY_BYTES = 32


class KeyRefused(TerminalError):
    """The server's public key is malformed or is not the key the operator expected."""

    code = "server_key_refused"


@dataclass(frozen=True, slots=True)
class ClinicSplit:
    """The insurer's answer for one visit: who pays what."""

    visit_id: str
    card_no: str
    scheme: str
    bill_fen: int
    insured_fen: int
    patient_fen: int
    rule: str


class ClearingClient:
    """Signed requests to the clearing service; one keep-alive connection for a sync cycle."""

    def __init__(
        self,
        base_url: str,
        credential: TerminalCredential,
        *,
        timeout_s: float = TIMEOUT_S_DEFAULT,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.credential = credential
        self._clock = clock
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport
        )

    def __enter__(self) -> ClearingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def _prefix(self) -> str:
        return f"/v1/terminals/{self.credential.terminal_id}"

    def _request(
        self, method: str, path: str, body: bytes = b"", timeout_s: float | None = None
    ) -> Any:
        request = self._http.build_request(
            method,
            path,
            content=body if body else None,
            headers={"Content-Type": "application/json"} if body else None,
            timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
        )
        # signed as it goes on the wire: the URL httpx built (base path and encoding included)
        request.headers.update(
            signed_headers(self.credential, method, str(request.url), body, int(self._clock()))
        )
        try:
            response = self._http.send(request)
        except httpx.HTTPError as error:
            raise ServiceUnavailable(
                f"clearing service unreachable: {type(error).__name__}"
            ) from error
        if response.status_code >= 500:
            raise ServiceUnavailable(f"clearing service answered {response.status_code}")
        if response.status_code >= 400:
            detail = ""
            try:
                problem = response.json()
                detail = f"{problem.get('code', '')}: {problem.get('detail') or problem.get('title', '')}"
            except (json.JSONDecodeError, AttributeError):
                detail = response.text[:200]
            raise UploadRefused(
                response.status_code, f"{method} {path} refused ({response.status_code}) {detail}"
            )
        if len(response.content) > RESPONSE_BYTES_MAX:
            raise ServiceUnavailable("clearing service answer is too large")
        try:
            return response.json()
        except json.JSONDecodeError as error:
            raise ServiceUnavailable(
                "clearing service answered something that is not JSON"
            ) from error

    def upload_batch(self, batch: Batch) -> dict[str, Any]:
        """POST the frozen batch bytes; the answer is the server's acknowledgement."""
        answer = self._request("POST", f"{self._prefix}/batches", batch.body)
        if not isinstance(answer, dict) or answer.get("batch_id") != batch.batch_id:
            raise ServiceUnavailable("the acknowledgement does not name the batch sent")
        return answer

    def fetch_list(self, kind: str, since: int) -> dict[str, Any]:
        answer = self._request("GET", f"{self._prefix}/{kind}-list?since={since}")
        if not isinstance(answer, dict):
            raise ServiceUnavailable("a list answer must be a JSON object")
        return answer

    def clinic_split(
        self,
        visit_id: str,
        card_no: str,
        bill_fen: int,
        visit_at: datetime,
        timeout_s: float = CLINIC_TIMEOUT_S_DEFAULT,
    ) -> ClinicSplit:
        body = json.dumps(
            {
                "visit_id": visit_id,
                "card_no": card_no,
                "bill_fen": bill_fen,
                "visit_at": visit_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            separators=(",", ":"),
        ).encode("utf-8")
        answer = self._request("POST", f"{self._prefix}/clinic/splits", body, timeout_s=timeout_s)
        try:
            split = ClinicSplit(
                visit_id=str(answer["visit_id"]),
                card_no=str(answer["card_no"]),
                scheme=str(answer["scheme"]),
                bill_fen=int(answer["bill_fen"]),
                insured_fen=int(answer["insured_fen"]),
                patient_fen=int(answer["patient_fen"]),
                rule=str(answer["rule"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ServiceUnavailable("the clinic split answer is malformed") from error
        if (
            split.visit_id != visit_id
            or split.bill_fen != bill_fen
            or split.insured_fen < 0
            or split.patient_fen < 0
            or split.insured_fen + split.patient_fen != bill_fen
        ):
            raise ServiceUnavailable("the clinic split does not add up to the bill")
        return split


def key_fingerprint(public_key_hex: str) -> str:
    """What an operator compares by eye: SHA256 of the raw key, base64 without padding (the
    form OpenSSH prints), e.g. SHA256:n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg."""
    digest = hashlib.sha256(bytes.fromhex(public_key_hex)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def valid_public_key_hex(text: str) -> str:
    """The key as 64 lowercase hex digits if it is an Ed25519 public key; KeyRefused if not."""
    text = text.strip().lower()
    try:
        raw = bytes.fromhex(text)
        if len(raw) != PUBLIC_KEY_BYTES:
            raise ValueError("not 32 bytes")
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise KeyRefused("the server public key must be an Ed25519 key, 64 hex digits") from None
    return text


def fetch_list_public_key(
    base_url: str,
    *,
    expected_fingerprint: str = "",
    timeout_s: float = TIMEOUT_S_DEFAULT,
    transport: httpx.BaseTransport | None = None,
) -> str:
    """The clearing service's list-signing public key (GET /v1/lists/public-key), checked to be
    an Ed25519 key and, when `expected_fingerprint` is given, to be that key. Without it the
    first fetch is trusted and pinned: every list the terminal takes later must verify with it."""
    try:
        with httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport
        ) as http:
            response = http.get(PUBLIC_KEY_PATH)
    except httpx.HTTPError as error:
        raise ServiceUnavailable(
            f"clearing service at {base_url} unreachable: {type(error).__name__}"
        ) from error
    if response.status_code != 200:
        raise ServiceUnavailable(
            f"GET {PUBLIC_KEY_PATH} answered {response.status_code}: is {base_url} a onecard "
            "clearing service?"
        )
    try:
        key = response.json()["public_key"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise KeyRefused(f"GET {PUBLIC_KEY_PATH} did not answer a public key") from None
    key = valid_public_key_hex(str(key))
    if expected_fingerprint and key_fingerprint(key) != expected_fingerprint.strip():
        raise KeyRefused(
            f"the server's key has fingerprint {key_fingerprint(key)}, not the expected "
            f"{expected_fingerprint.strip()}: wrong server, or someone in between"
        )
    return key
