"""Pure rules of list deltas: the net effect of a run of changes on a terminal's copy.

A terminal at version N holds exactly the entries present at N. Applying the delta
(added, removed) of the changes after N to that set yields the list at the new version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from clearing.lists.models import ListOp


@dataclass(frozen=True, slots=True)
class Delta:
    added: tuple[str, ...]
    removed: tuple[str, ...]


def net_delta(changes: Iterable[tuple[str, ListOp]]) -> Delta:
    """Net effect of changes (oldest first): per key, present before the first change?

    A key whose first change is a removal was present before the run; a key is present after
    the run if its last change is an addition. Keys that end where they started are left out.
    """
    first: dict[str, ListOp] = {}
    last: dict[str, ListOp] = {}
    for key, op in changes:
        first.setdefault(key, op)
        last[key] = op
    added = []
    removed = []
    for key, last_op in last.items():
        before = first[key] is ListOp.REMOVE
        after = last_op is ListOp.ADD
        if after and not before:
            added.append(key)
        elif before and not after:
            removed.append(key)
    return Delta(tuple(sorted(added)), tuple(sorted(removed)))


def apply_delta(entries: frozenset[str], delta: Delta) -> frozenset[str]:
    return (entries - frozenset(delta.removed)) | frozenset(delta.added)
