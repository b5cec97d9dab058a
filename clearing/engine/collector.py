"""Python's cycle collector during a clearing run (pure).

A chunk keeps ~10 container objects per record (Tap, PostedTap, Decision, Pending, its rows and
transfers) for its whole life, so they outlive the young generations: each chunk of 8,000
records moves ~100,000 objects into the oldest one, and CPython then runs a full collection,
which visits every object of the process (~115 ms in a clearing worker), about twice a chunk.
Measured at 200,000 taps with 2 workers: 3.6 s of each worker's 10.4 s of CPU went to the
collector, 2.8 s of it to 24 full collections.

Nearly all of a chunk is freed by reference counting when the chunk ends; what makes cycles
(exceptions and their tracebacks, asyncio's futures) is young. So while a run clears, the
automatic collector is off; after each chunk the young generations are collected (a few ms),
and every `FULL_EVERY` chunks the whole heap, so cyclic garbage stays bounded in a worker that
lives for many runs. When the last run of the process ends the collector is as it was.

A full collection need not visit what was alive before it: the worker's modules and what it
read once (its imports, the TAC keys of the cards seen). Those are frozen (`gc.freeze`) when the
run starts and after each full collection, so the next one visits only what the chunks since
made; when the last run ends they are unfrozen, and a cycle among them that died meanwhile is
collected then (the collector's next pass). A process that froze objects itself (before forking
workers, say) keeps them frozen: then the run freezes nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Chunks between two full collections during a run (~128,000 records at 8,000 a chunk).
FULL_EVERY = 16

_runs = 0  # runs of this process inside `between_chunks` (the collector is off while > 0)
_was_enabled = True
_freezes = False  # the runs freeze what outlives a full collection (nobody else froze anything)


@contextmanager
def between_chunks() -> Iterator[Callable[[], None]]:
    """The automatic collector off for the block; yields what to call after each chunk."""
    global _runs, _was_enabled, _freezes
    if _runs == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
        _freezes = gc.get_freeze_count() == 0
        if _freezes:
            gc.freeze()
    _runs += 1
    chunks = 0

    def after_chunk() -> None:
        nonlocal chunks
        chunks += 1
        if chunks % FULL_EVERY:
            gc.collect(1)
            return
        gc.collect(2)
        if _freezes:
            gc.freeze()

    try:
        yield after_chunk
    finally:
        _runs -= 1
        if _runs == 0:
            if _freezes:
                gc.unfreeze()
            if _was_enabled:
                gc.enable()
