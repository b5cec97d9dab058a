"""While a clearing run clears, Python's automatic cycle collector is off and runs between
chunks instead (clearing/engine/collector.py). A worker lives for many runs, so: cyclic garbage
made during a run is still collected, and the collector is back on after the run, whatever way
it ends."""

from __future__ import annotations

import gc
import weakref

import pytest

from clearing.engine import collector
from tests.clearing.test_engine import ADULT, World, engine_pg_url, world, world_url

__all__ = ["engine_pg_url", "world", "world_url"]


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_cyclic_garbage_of_a_chunk_is_collected_after_it() -> None:
    with collector.between_chunks() as after_chunk:
        assert not gc.isenabled()
        gone = _cycle()
        assert gone() is not None  # nothing collects it during the chunk
        after_chunk()
        assert gone() is None
    assert gc.isenabled()


def test_garbage_that_outlived_a_chunk_is_collected_by_the_periodic_full_collection() -> None:
    with collector.between_chunks() as after_chunk:
        keep = _Node()
        keep.other = _Node()
        keep.other.other = keep
        old = weakref.ref(keep)
        after_chunk()  # survives the young collection: now old
        del keep
        for _ in range(collector.FULL_EVERY - 2):
            after_chunk()
        assert old() is not None  # only a full collection finds it
        after_chunk()
        assert old() is None


def test_what_was_frozen_during_a_run_is_collectable_again_after_it() -> None:
    """Objects alive when the run started are frozen (full collections skip them); a cycle among
    them that dies during the run is collected once the run is over, not kept for ever."""
    before = _Node()
    before.other = _Node()
    before.other.other = before
    old = weakref.ref(before)
    with collector.between_chunks() as after_chunk:
        assert gc.get_freeze_count() > 0
        del before
        for _ in range(collector.FULL_EVERY):
            after_chunk()
        assert old() is not None  # frozen: even the full collection skips it
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert old() is None


def _frozen(obj: object) -> bool:
    """Tracked by the collector yet in none of its three generations: in the permanent one."""
    return gc.is_tracked(obj) and not any(
        any(o is obj for o in gc.get_objects(generation=g)) for g in range(3)
    )


def test_objects_the_process_froze_itself_stay_frozen() -> None:
    # The freeze count is no measure: a frozen object freed meanwhile (by another thread of the
    # test process, say) leaves it. An object the test holds on to is.
    kept: list[object] = [object()]
    gc.freeze()
    try:
        assert _frozen(kept)
        with collector.between_chunks() as after_chunk:
            for _ in range(collector.FULL_EVERY):
                after_chunk()
        assert _frozen(kept)
    finally:
        gc.unfreeze()
    assert not _frozen(kept)


def test_the_collector_is_back_on_after_a_failed_run_and_after_nested_runs() -> None:
    with pytest.raises(RuntimeError), collector.between_chunks():
        with collector.between_chunks():
            pass
        assert not gc.isenabled()  # the outer run still clears
        raise RuntimeError("the database went away")
    assert gc.isenabled()


def test_a_process_that_had_turned_the_collector_off_keeps_it_off() -> None:
    gc.disable()
    try:
        with collector.between_chunks() as after_chunk:
            after_chunk()
        assert not gc.isenabled()
    finally:
        gc.enable()


async def test_a_clearing_run_leaves_the_collector_on(world: World) -> None:
    await world.upload([world.ride(ADULT, 200)])
    assert (await world.engine.clear_pending()).posted == 1
    assert gc.isenabled()
