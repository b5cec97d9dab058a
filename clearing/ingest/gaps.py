"""Pure rule of terminal sequence gaps: which terminal_seq values have never arrived.

A terminal's serial never repeats and increases by one per transaction; anything between
the lowest and highest seen that has not arrived is a gap (late, lost or torn). Nothing
below the lowest serial ever seen is counted as missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Gap:
    from_seq: int
    to_seq: int  # inclusive

    def __post_init__(self) -> None:
        if self.from_seq > self.to_seq:
            raise ValueError(f"empty gap {self.from_seq}..{self.to_seq}")


def update_gaps(
    open_gaps: Iterable[Gap], seen: tuple[int, int] | None, seqs: Iterable[int]
) -> tuple[list[Gap], tuple[int, int] | None]:
    """Open gaps and the (lowest, highest) serial seen after `seqs` arrive.

    `seen` is the range before (None: nothing yet). Arrivals may come in any order and repeat;
    a serial below the lowest seen extends the range downwards (an older batch arrived late).
    """
    arrived = sorted(set(seqs))
    gaps = sorted(open_gaps)
    if not arrived:
        return gaps, seen
    low, high = seen if seen is not None else (arrived[0], arrived[0])
    new_low, new_high = min(low, arrived[0]), max(high, arrived[-1])
    if new_low < low:
        gaps.append(Gap(new_low, low - 1))
    if new_high > high:
        gaps.append(Gap(high + 1, new_high))
    return _fill(gaps, arrived), (new_low, new_high)


def _fill(gaps: list[Gap], arrived: list[int]) -> list[Gap]:
    result: list[Gap] = []
    index = 0
    for gap in sorted(gaps):
        while index < len(arrived) and arrived[index] < gap.from_seq:
            index += 1
        start = gap.from_seq
        while index < len(arrived) and arrived[index] <= gap.to_seq:
            seq = arrived[index]
            if seq > start:
                result.append(Gap(start, seq - 1))
            start = seq + 1
            index += 1
        if start <= gap.to_seq:
            result.append(Gap(start, gap.to_seq))
    return result
