"""The terminal's Ed25519 credential and request signing of docs/terminal-protocol.md.

Signs every request per RFC 9421 (HTTP Message Signatures, through the maintained
`http-message-signatures` library): method, path, query, the RFC 9530 Content-Digest of the exact
body and the terminal id, with `created` and a fresh `nonce`. Checks the server's signature on
list deltas. The private key lives in a 0600 file and is never printed.
"""

from __future__ import annotations

import json
import secrets
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

from cardio.atomicfile import MODE_SECRET, write_text_atomic
from terminals.errors import TerminalError

CREDENTIAL_FORMAT = "onecard-terminal-credential/1"
HEADER_TERMINAL_ID = "Onecard-Terminal-Id"
SIGNATURE_LABEL = "sig1"
NONCE_BYTES = 16  # base64url: 22 characters


class CredentialError(TerminalError):
    """The terminal credential file is missing, malformed or readable by others."""

    code = "credential_error"


@dataclass(frozen=True, slots=True)
class TerminalCredential:
    terminal_id: str  # 12 hex digits, the SAM's terminal number
    private_key: Ed25519PrivateKey = field(repr=False)

    @property
    def public_key_hex(self) -> str:
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return raw.hex()


def new_credential(terminal_id: str) -> TerminalCredential:
    if len(terminal_id) != 12:
        raise CredentialError("a terminal id is 12 hex digits")
    return TerminalCredential(terminal_id.upper(), Ed25519PrivateKey.generate())


def write_credential(credential: TerminalCredential, path: Path | str) -> None:
    """Write the credential atomically with mode 0600."""
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = credential.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    body = {
        "format": CREDENTIAL_FORMAT,
        "terminal_id": credential.terminal_id,
        "ed25519_private": raw.hex(),
    }
    write_text_atomic(path, json.dumps(body), mode=MODE_SECRET)


def load_credential(path: Path | str) -> TerminalCredential:
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise CredentialError(f"no terminal credential at {path}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialError(f"the credential {path} is readable by others: chmod 600 {path}")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        if body.get("format") != CREDENTIAL_FORMAT:
            raise CredentialError(f"{path} is not a {CREDENTIAL_FORMAT} file")
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(body["ed25519_private"]))
        return TerminalCredential(str(body["terminal_id"]).upper(), key)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        raise CredentialError(f"the credential {path} is malformed") from None


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """The request being signed, as the signing library reads it."""

    method: str
    url: str
    headers: dict[str, str]


def covered_components(has_query: bool, has_body: bool) -> tuple[str, ...]:
    """What a terminal signs, in this order (docs/terminal-protocol.md)."""
    components = ["@method", "@path"]
    if has_query:
        components.append("@query")
    if has_body:
        components.append("content-digest")
    components.append(HEADER_TERMINAL_ID.lower())
    return tuple(components)


def signed_headers(
    credential: TerminalCredential,
    method: str,
    url: str,
    body: bytes,
    created: int,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers that sign one request per RFC 9421: Onecard-Terminal-Id, Content-Digest (if
    there is a body), Signature-Input and Signature.

    `url` is the absolute URL exactly as it will be sent (path and query percent-encoded as on
    the wire); `body` the exact bytes sent.
    """
    headers = {HEADER_TERMINAL_ID: credential.terminal_id}
    message = _Outgoing(method.upper(), url, headers)
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(
            public_keys={}, private_keys={credential.terminal_id: credential.private_key}
        ),
    )
    signer.sign(
        message,
        key_id=credential.terminal_id,
        created=datetime.fromtimestamp(created, UTC),
        nonce=nonce or secrets.token_urlsafe(NONCE_BYTES),
        label=SIGNATURE_LABEL,
        covered_component_ids=covered_components("?" in url, bool(body)),
        body=body if body else None,
    )
    return headers


def canonical_list_bytes(body: dict[str, object]) -> bytes:
    """What the server signs of a list delta: canonical JSON of the body without `signature`."""
    unsigned = {k: v for k, v in body.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode("utf-8")


def list_signature_valid(body: dict[str, object], server_public_key_hex: str) -> bool:
    """True if the server's Ed25519 signature over the canonical body verifies.

    The protocol's canonical JSON escapes non-ASCII (json.dumps defaults); a server that signs
    UTF-8 unescaped produces the same bytes for ASCII lists, and is accepted too: both forms
    are the same signed content, so this does not weaken the check.
    """
    signature = body.get("signature")
    if not isinstance(signature, str):
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(server_public_key_hex))
        raw_signature = bytes.fromhex(signature)
    except ValueError:
        return False
    unsigned = {k: v for k, v in body.items() if k != "signature"}
    for ensure_ascii in (True, False):
        message = json.dumps(
            unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=ensure_ascii
        ).encode("utf-8")
        try:
            key.verify(raw_signature, message)
        except InvalidSignature:
            continue
        return True
    return False
