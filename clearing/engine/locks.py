"""The locks a clearing chunk takes (PostgreSQL): the clearing lock shared, and its run's card
shards exclusively (clearing/engine/shards.py). Settlement and finance staff's releases take the
clearing lock exclusively (repository.take_clearing_lock), so they wait for every chunk."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.engine import pg
from clearing.engine.repository import CLEARING_LOCK_KEY, is_postgresql
from clearing.engine.shards import ALL_SHARDS, ShardRange, ShardRangeInvalid


async def try_shard_locks(conn: AsyncConnection, shards: ShardRange) -> bool:
    """Take the locks a chunk of a run over `shards` needs if nobody holds them: the clearing
    lock shared (settlement and releases hold it exclusively) and each shard's exclusive lock
    (clearing/engine/shards.py). False: someone holds one; `take_shard_locks` waits for them.
    SQLite has one writer and needs none (and clears the whole range only)."""
    if not is_postgresql(conn):
        if shards != ALL_SHARDS:
            raise ShardRangeInvalid("clearing by shards needs PostgreSQL")
        return True
    if not await pg.try_clearing_shared(conn, CLEARING_LOCK_KEY):
        return False
    if await pg.shards_busy(conn, CLEARING_LOCK_KEY, shards):
        return False
    await pg.lock_shards(conn, CLEARING_LOCK_KEY, shards)
    return True


async def take_shard_locks(conn: AsyncConnection, shards: ShardRange) -> None:
    """Wait for the locks `try_shard_locks` could not take."""
    if is_postgresql(conn):
        await pg.lock_shards(conn, CLEARING_LOCK_KEY, shards)
