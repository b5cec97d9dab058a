"""Residents' passwords: Argon2id through argon2-cffi, with the cost the settings name (RFC
9106's low-memory profile by default). Hashing is CPU and memory work: it runs off the event
loop. A password is never logged nor stored in clear; only its encoded hash (salt and
parameters inside, so a hash made with other parameters still verifies)."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from clearing.settings import Settings

PARALLELISM = 4  # RFC 9106 §4's recommended lanes


@lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=PARALLELISM)


def hasher(settings: Settings) -> PasswordHasher:
    return _hasher(settings.password_hash_time_cost, settings.password_hash_memory_kib)


async def hash_password(settings: Settings, password: str) -> str:
    return await asyncio.to_thread(hasher(settings).hash, password)


def _verify(hasher_: PasswordHasher, encoded: str, password: str) -> bool:
    try:
        return hasher_.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(settings: Settings, encoded: str, password: str) -> bool:
    return await asyncio.to_thread(_verify, hasher(settings), encoded, password)


def needs_rehash(settings: Settings, encoded: str) -> bool:
    """The hash was made with other parameters than today's: hash again at the next login."""
    return hasher(settings).check_needs_rehash(encoded)


@lru_cache(maxsize=8)
def _decoy_hash(time_cost: int, memory_kib: int) -> str:
    return _hasher(time_cost, memory_kib).hash("decoy password for unknown logins")


async def spend_like_a_verify(settings: Settings, password: str) -> None:
    """Take as long as a real check, so an unknown login answers no faster than a wrong
    password (the answer itself is the same)."""
    decoy = _decoy_hash(settings.password_hash_time_cost, settings.password_hash_memory_kib)
    await verify_password(settings, decoy, password)
