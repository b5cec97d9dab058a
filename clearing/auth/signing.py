"""Terminal request signatures (docs/terminal-protocol.md): the signed message, sign, verify.

Pure: no I/O, no clock. The server checks the timestamp window and the nonce store elsewhere.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HEADER_TERMINAL = "X-Onecard-Terminal"
HEADER_TIMESTAMP = "X-Onecard-Timestamp"
HEADER_NONCE = "X-Onecard-Nonce"
HEADER_SIGNATURE = "X-Onecard-Signature"

TIMESTAMP_SKEW_S_MAX = 300  # the protocol's window; nonces are remembered at least this long
TERMINAL_ID_PATTERN = re.compile(r"^[0-9A-F]{12}$")
NONCE_PATTERN = re.compile(r"^[0-9a-fA-F]{32}$")
SIGNATURE_PATTERN = re.compile(r"^[0-9a-fA-F]{128}$")
PUBLIC_KEY_PATTERN = re.compile(r"^[0-9a-fA-F]{64}$")
TIMESTAMP_PATTERN = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """The four signing headers of one terminal request, checked for shape only."""

    terminal_id: str
    timestamp: int
    nonce: str
    signature: bytes
    timestamp_text: str  # as sent: what the terminal signed (leading zeros and all)


def signed_message(
    method: str, path_with_query: str, timestamp: int | str, nonce: str, body: bytes
) -> bytes:
    """What a terminal signs: method, path+query, timestamp, nonce and SHA-256 of the body."""
    body_hash = hashlib.sha256(body).hexdigest()
    text = f"{method.upper()}\n{path_with_query}\n{timestamp}\n{nonce}\n{body_hash}"
    return text.encode("utf-8")


def sign_request(
    private_key: Ed25519PrivateKey,
    method: str,
    path_with_query: str,
    timestamp: int,
    nonce: str,
    body: bytes,
) -> str:
    """The hex signature a terminal sends (used by tests and by any Python client)."""
    message = signed_message(method, path_with_query, timestamp, nonce, body)
    return private_key.sign(message).hex()


def parse_signed_headers(headers: dict[str, str | None]) -> SignedHeaders | None:
    """The four headers if all are present and well formed, else None (→ 401)."""
    terminal_id = headers.get(HEADER_TERMINAL)
    timestamp = headers.get(HEADER_TIMESTAMP)
    nonce = headers.get(HEADER_NONCE)
    signature = headers.get(HEADER_SIGNATURE)
    if terminal_id is None or timestamp is None or nonce is None or signature is None:
        return None
    if not TERMINAL_ID_PATTERN.match(terminal_id):
        return None
    if not TIMESTAMP_PATTERN.match(timestamp):
        return None
    if not NONCE_PATTERN.match(nonce) or not SIGNATURE_PATTERN.match(signature):
        return None
    return SignedHeaders(
        terminal_id, int(timestamp), nonce, bytes.fromhex(signature), timestamp_text=timestamp
    )


def timestamp_fresh(timestamp: int, now_s: int) -> bool:
    return abs(now_s - timestamp) <= TIMESTAMP_SKEW_S_MAX


def verify_signature(public_key_hex: str, signature: bytes, message: bytes) -> bool:
    if not PUBLIC_KEY_PATTERN.match(public_key_hex):
        return False
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
