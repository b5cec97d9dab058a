"""The server's Ed25519 key that signs the deny and action lists, and the canonical JSON it signs.

Pure except `load_server_key`, which reads the key from settings or its file (made once, 0600).
The private key never leaves this module's callers and is never logged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cardio.atomicfile import MODE_SECRET, write_text_atomic
from clearing.settings import Settings

KEY_FILE_NAME = "list-signing-key.hex"


def canonical_json(body: dict[str, Any]) -> bytes:
    """The protocol's canonical form: json.dumps defaults, sorted keys, no spaces."""
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign_body(key: Ed25519PrivateKey, body: dict[str, Any]) -> str:
    """The hex signature over `body` without its `signature` field."""
    unsigned = {name: value for name, value in body.items() if name != "signature"}
    return key.sign(canonical_json(unsigned)).hex()


def verify_body(public_key_hex: str, body: dict[str, Any]) -> bool:
    """What a terminal does with a list it fetched (used by tests)."""
    signature = body.get("signature")
    if not isinstance(signature, str):
        return False
    unsigned = {name: value for name, value in body.items() if name != "signature"}
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
    try:
        key.verify(bytes.fromhex(signature), canonical_json(unsigned))
    except (InvalidSignature, ValueError):
        return False
    return True


def public_key_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _from_hex(text: str, where: str) -> Ed25519PrivateKey:
    try:
        seed = bytes.fromhex(text.strip())
    except ValueError as error:
        raise ValueError(f"the list signing key in {where} is not hex") from error
    if len(seed) != 32:
        raise ValueError(f"the list signing key in {where} must be 32 bytes (64 hex digits)")
    return Ed25519PrivateKey.from_private_bytes(seed)


def load_server_key(settings: Settings) -> Ed25519PrivateKey:
    """ONECARD_LIST_SIGNING_KEY if set; else data_dir/list-signing-key.hex, made on first use."""
    if settings.list_signing_key:
        return _from_hex(settings.list_signing_key, "ONECARD_LIST_SIGNING_KEY")
    path = Path(settings.data_dir) / KEY_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return _from_hex(path.read_text(), str(path))
    # Write a temporary file, then link it into place: concurrent starters agree on one key.
    seed = os.urandom(32)
    try:
        write_text_atomic(path, seed.hex() + "\n", mode=MODE_SECRET, exclusive=True)
    except FileExistsError:
        return _from_hex(path.read_text(), str(path))
    return Ed25519PrivateKey.from_private_bytes(seed)
