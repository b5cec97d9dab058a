"""Ageing buckets: how many open items (breaks, quarantined records) are how old. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

# Lower bounds of the buckets, in days: under 1, 1-3, 3-7, 7-30, 30 and more.
BUCKET_DAYS = (0, 1, 3, 7, 30)


@dataclass(frozen=True, slots=True)
class AgeBucket:
    days_min: int
    days_max: int | None  # None: no upper bound
    items: int

    @property
    def label(self) -> str:
        if self.days_max is None:
            return f"{self.days_min}+"
        return f"{self.days_min}-{self.days_max}"


def age_buckets(since: Iterable[datetime], now: datetime) -> tuple[AgeBucket, ...]:
    """Count each moment by its age at `now` into BUCKET_DAYS (a moment after `now`: age 0)."""
    counts = [0] * len(BUCKET_DAYS)
    for moment in since:
        age = max(now - moment, timedelta(0))
        index = max(i for i, days in enumerate(BUCKET_DAYS) if age >= timedelta(days=days))
        counts[index] += 1
    uppers: list[int | None] = [*BUCKET_DAYS[1:], None]
    return tuple(
        AgeBucket(low, high, count)
        for low, high, count in zip(BUCKET_DAYS, uppers, counts, strict=True)
    )
