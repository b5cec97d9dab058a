"""Card shards: how clearing is split across workers (pure).

Every card belongs to one of `SHARDS` shards, a stable hash of its card number (PostgreSQL's
`hashtext`), stored by the database with each record clearing has not done with (`tap_open`,
whose trigger in migration 0010_tapopen keeps its own copy of `SHARDS`: change both together). A run clears a range of
shards `[low, high)`, the whole range by default; a chunk takes an exclusive lock per shard of
its range (ascending, so two runs never deadlock), so a card's records are only ever cleared by
one run at a time, in counter order, whichever worker that run is on. Settlement and finance
staff's releases still take the one clearing lock exclusively, and so wait for every run.
"""

from __future__ import annotations

SHARDS = 32
ShardRange = tuple[int, int]
ALL_SHARDS: ShardRange = (0, SHARDS)


class ShardRangeInvalid(ValueError):
    """A shard range outside 0 .. SHARDS or empty."""


def checked(shards: ShardRange) -> ShardRange:
    low, high = shards
    if not (0 <= low < high <= SHARDS):
        raise ShardRangeInvalid(f"a shard range is low..high with 0 <= low < high <= {SHARDS}")
    return low, high


def split(workers: int) -> list[ShardRange]:
    """The whole range in `workers` contiguous ranges of (nearly) equal size."""
    if not 1 <= workers <= SHARDS:
        raise ShardRangeInvalid(f"workers must be 1 .. {SHARDS}")
    bounds = [round(n * SHARDS / workers) for n in range(workers + 1)]
    return [(bounds[n], bounds[n + 1]) for n in range(workers)]
