"""Deterministic 128-bit ids from string keys, so callers can compute ids from names.

`account_id("card:3100000000000001")` is the same everywhere, on every run; it is never 0 and
never 2**128-1 (both are reserved, as in TigerBeetle).
"""

from __future__ import annotations

import hashlib

from ledger.types import ID_MAX


def id_from_key(key: str) -> int:
    """SHA-256 of the UTF-8 key, truncated to 128 bits, mapped into 1 .. 2**128-2."""
    if not key:
        raise ValueError("an id key must not be empty")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    value = int.from_bytes(digest[:16], "big")
    # 0 and ID_MAX are reserved; fold them (probability 2**-127) onto valid ids.
    return value % (ID_MAX - 1) + 1


def account_id(name: str) -> int:
    """The conventional id of the account named `name` (e.g. `payable:bus-1`)."""
    return id_from_key("account:" + name)


def transfer_id(key: str) -> int:
    """The conventional id of a transfer from its idempotency key (e.g. `tap:<card>:<counter>`)."""
    return id_from_key("transfer:" + key)


def expiry_id(pending_id: int) -> int:
    """Id of the row with which the ledger releases an expired pending transfer."""
    return id_from_key(f"ledger-expiry:{pending_id}")
