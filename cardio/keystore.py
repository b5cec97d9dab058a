"""Key store file of issuer master keys (JSON, hex keys, mode 0600) and the per-card keys derived from it.

It must never log, print or repr key material, and refuses a file that group or others can read.

Public API:
- `KeyKind` (PURCHASE = DPK, LOAD = DLK, TAC = DTK, MAINTENANCE), `MasterKey`, `KeyStore`, `CardKeys`.
- `create_key_store(path, issuer_id=..., algorithm=Algorithm.TDES, overwrite=False) -> KeyStore`:
  random keys (os.urandom), written atomically with mode 0600; refuses to overwrite unless asked.
- `load_key_store(path) -> KeyStore`; `KeyStore.master(kind, index=None) -> MasterKey`;
  `KeyStore.card_keys(app_serial) -> CardKeys` (each card key diversified from its master, §3.2).
- `KeyStore.only(*kinds)` + `write_key_store(store, path)`: a least-privilege copy (e.g. TAC only
  for the clearing service); `master()` of a kind the store lacks is a KeyStoreError.
- `KeyStoreError` (a `cardio.errors.CardioError`) for a missing, malformed or too-open file.

File format (`"format": "onecard-keystore/1"`):
    {"format": ..., "issuer_id": "<16 hex>", "algorithm": 0,
     "keys": [{"kind": "purchase", "index": 1, "version": 1, "key": "<32 hex>"}, ...]}
`index` is the key index (密钥标识) a terminal sends in INITIALIZE; `version` the key version the card
answers. Several indexes of one kind may coexist (key rotation); `master(kind)` takes the highest.
"""

from __future__ import annotations

import enum
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cardio.atomicfile import MODE_SECRET, write_text_atomic
from cardio.crypto import Algorithm, diversify_key
from cardio.errors import KeyStoreError

__all__ = [
    "KEY_STORE_FORMAT",
    "CardKeys",
    "KeyKind",
    "KeyStore",
    "MasterKey",
    "create_key_store",
    "load_key_store",
    "write_key_store",
]

KEY_STORE_FORMAT = "onecard-keystore/1"
KEY_STORE_BYTES_MAX = 1 << 20  # a key store is a few hundred bytes; refuse anything absurd
KEYS_MAX = 256
ISSUER_ID_DEFAULT = bytes.fromhex("3100000000000000")


class KeyKind(enum.StrEnum):
    """Which issuer master key (PURSE.md §3.1)."""

    PURCHASE = "purchase"  # DPK: purchase MAC1/MAC2 session keys (held by PSAMs)
    LOAD = "load"  # DLK: load MAC1/MAC2 session keys (held by the load host / HSM)
    TAC = "tac"  # DTK: the card signs every transaction with it; only the back office verifies
    MAINTENANCE = "maintenance"  # secure messaging (line protection) of file updates


@dataclass(frozen=True, slots=True)
class MasterKey:
    kind: KeyKind
    index: int
    version: int
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.index <= 0xFF or not 0 <= self.version <= 0xFF:
            raise KeyStoreError("key index must be 1..255 and key version 0..255")
        if len(self.key) != 16:
            raise KeyStoreError(f"the {self.kind} master key must be 16 bytes")


@dataclass(frozen=True, slots=True)
class CardKeys:
    """One card's keys, each diversified from its master key by the application serial."""

    algorithm: Algorithm
    dpk: bytes = field(repr=False)
    dpk_index: int
    dpk_version: int
    dlk: bytes = field(repr=False)
    dlk_index: int
    dlk_version: int
    dtk: bytes = field(repr=False)
    maintenance: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeyStore:
    issuer_id: bytes
    algorithm: Algorithm
    keys: tuple[MasterKey, ...] = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.issuer_id) != 8:
            raise KeyStoreError("issuer_id must be 8 bytes")
        if len(self.keys) > KEYS_MAX:
            raise KeyStoreError(f"a key store holds at most {KEYS_MAX} keys")
        seen = set()
        for key in self.keys:
            if (key.kind, key.index) in seen:
                raise KeyStoreError(f"duplicate {key.kind} key index {key.index}")
            seen.add((key.kind, key.index))
        if not self.keys:
            raise KeyStoreError("the key store holds no keys")

    def master(self, kind: KeyKind, index: int | None = None) -> MasterKey:
        """The master key of `kind` with that key index (the highest index when None)."""
        candidates = [k for k in self.keys if k.kind is kind]
        if not candidates:
            raise KeyStoreError(f"this key store holds no {kind} master key")
        if index is None:
            return max(candidates, key=lambda k: k.index)
        for key in candidates:
            if key.index == index:
                return key
        raise KeyStoreError(f"no {kind} master key with index {index}")

    def only(self, *kinds: KeyKind) -> KeyStore:
        """The same store with only these kinds of key: least privilege for each holder (the
        clearing service needs only the TAC key, a SAM only the purchase key, the load host only
        the load key)."""
        keys = tuple(k for k in self.keys if k.kind in kinds)
        return KeyStore(issuer_id=self.issuer_id, algorithm=self.algorithm, keys=keys)

    def card_keys(self, app_serial: bytes) -> CardKeys:
        """The keys to personalise (or simulate) the card with this 10-byte application serial."""
        dpk = self.master(KeyKind.PURCHASE)
        dlk = self.master(KeyKind.LOAD)
        return CardKeys(
            algorithm=self.algorithm,
            dpk=diversify_key(dpk.key, app_serial, self.algorithm),
            dpk_index=dpk.index,
            dpk_version=dpk.version,
            dlk=diversify_key(dlk.key, app_serial, self.algorithm),
            dlk_index=dlk.index,
            dlk_version=dlk.version,
            dtk=diversify_key(self.master(KeyKind.TAC).key, app_serial, self.algorithm),
            maintenance=diversify_key(
                self.master(KeyKind.MAINTENANCE).key, app_serial, self.algorithm
            ),
        )

    def to_json(self) -> str:
        body = {
            "format": KEY_STORE_FORMAT,
            "issuer_id": self.issuer_id.hex().upper(),
            "algorithm": int(self.algorithm),
            "keys": [
                {
                    "kind": k.kind.value,
                    "index": k.index,
                    "version": k.version,
                    "key": k.key.hex().upper(),
                }
                for k in self.keys
            ],
        }
        return json.dumps(body, indent=2) + "\n"


def _hex(value: object, length: int, what: str) -> bytes:
    if not isinstance(value, str):
        raise KeyStoreError(f"{what} must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise KeyStoreError(f"{what} is not valid hex") from None
    if len(raw) != length:
        raise KeyStoreError(f"{what} must be {length} bytes")
    return raw


def _parse(text: str) -> KeyStore:
    try:
        body = json.loads(text)
    except json.JSONDecodeError as error:
        raise KeyStoreError(f"the key store is not valid JSON (line {error.lineno})") from None
    if not isinstance(body, dict) or body.get("format") != KEY_STORE_FORMAT:
        raise KeyStoreError(f"the key store must be a JSON object with format {KEY_STORE_FORMAT!r}")
    try:
        algorithm = Algorithm(body.get("algorithm", 0))
    except ValueError:
        raise KeyStoreError("unknown algorithm identifier in the key store") from None
    raw_keys = body.get("keys")
    if not isinstance(raw_keys, list):
        raise KeyStoreError("the key store needs a list of keys")
    keys = []
    for n, item in enumerate(raw_keys):
        if not isinstance(item, dict):
            raise KeyStoreError(f"key #{n} must be an object")
        try:
            kind = KeyKind(str(item.get("kind")))
        except ValueError:
            raise KeyStoreError(f"key #{n} has an unknown kind") from None
        index, version = item.get("index", 1), item.get("version", 1)
        if not isinstance(index, int) or not isinstance(version, int):
            raise KeyStoreError(f"key #{n}: index and version must be integers")
        keys.append(MasterKey(kind, index, version, _hex(item.get("key"), 16, f"key #{n}")))
    return KeyStore(
        issuer_id=_hex(body.get("issuer_id", ISSUER_ID_DEFAULT.hex()), 8, "issuer_id"),
        algorithm=algorithm,
        keys=tuple(keys),
    )


def load_key_store(path: str | os.PathLike[str]) -> KeyStore:
    """Read a key store file; refuses one that group or others may read (chmod 600 it)."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyStoreError(
            f"no key store at {path}: create one with `onecard card keys --out {path}`"
        ) from None
    if stat.S_ISDIR(info.st_mode):
        raise KeyStoreError(f"{path} is a folder, not a key store: name the key store's file")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyStoreError(f"the key store {path} is readable by others: chmod 600 {path}")
    if info.st_size > KEY_STORE_BYTES_MAX:
        raise KeyStoreError(f"the key store {path} is larger than {KEY_STORE_BYTES_MAX} bytes")
    return _parse(path.read_text(encoding="utf-8"))


def write_key_store(store: KeyStore, path: str | os.PathLike[str], overwrite: bool = False) -> None:
    """Write atomically with mode 0600 (temporary file in the same directory, then rename)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise KeyStoreError(f"{path} exists; refusing to overwrite a key store")
    write_text_atomic(path, store.to_json(), mode=MODE_SECRET)


def create_key_store(
    path: str | os.PathLike[str],
    issuer_id: bytes = ISSUER_ID_DEFAULT,
    algorithm: Algorithm = Algorithm.TDES,
    overwrite: bool = False,
) -> KeyStore:
    """Generate random 16-byte master keys (index 1, version 1 of each kind) and write them."""
    store = KeyStore(
        issuer_id=issuer_id,
        algorithm=algorithm,
        keys=tuple(MasterKey(kind, 1, 1, os.urandom(16)) for kind in KeyKind),
    )
    write_key_store(store, path, overwrite=overwrite)
    return store
