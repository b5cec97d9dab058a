"""Residents' passwords: Argon2id through argon2-cffi (RFC 9106's low-memory profile, the
library's default). Hashing is CPU and memory work: it runs off the event loop. A password is
never logged nor stored in clear; only its encoded hash (salt and parameters inside)."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(encoded: str, password: str) -> bool:
    try:
        return _hasher.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(encoded: str, password: str) -> bool:
    return await asyncio.to_thread(_verify, encoded, password)


def needs_rehash(encoded: str) -> bool:
    """The hash was made with weaker parameters than today's: hash again at the next login."""
    return _hasher.check_needs_rehash(encoded)


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    return _hasher.hash("decoy password for unknown logins")


async def spend_like_a_verify(password: str) -> None:
    """Take as long as a real check, so an unknown login answers no faster than a wrong
    password (the answer itself is the same)."""
    await verify_password(_decoy_hash(), password)
