"""Business days and the settlement cut-off. Pure: no I/O, no clock of its own.

A business day D runs from D at the cut-off (local time of the card company) to D+1 at the
cut-off; with the default 04:00 Asia/Shanghai a night bus at 01:30 belongs to the day before.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# The range of business days anyone may name (API and command line): a typo of a year is
# refused instead of settling an empty day in 1900.
BUSINESS_DAY_FIRST = date(2000, 1, 1)
BUSINESS_DAY_LAST = date(2100, 12, 31)

CUTOFF_DEFAULT = time(4, 0)
TIME_ZONE_DEFAULT = "Asia/Shanghai"


class CalendarError(ValueError):
    code = "calendar_invalid"


def parse_cutoff(text: str) -> time:
    """`HH:MM` (24 h) to a time; refuses anything else."""
    try:
        hours, minutes = text.strip().split(":")
        value = time(int(hours), int(minutes))
    except (ValueError, AttributeError):
        raise CalendarError(f"cut-off must be HH:MM (24 h), got {text!r}") from None
    return value


@functools.lru_cache(maxsize=1 << 16)
def _business_day_of_minute(zone: ZoneInfo, hours: int, minutes: int, minute: int) -> date:
    local = datetime.fromtimestamp(minute * 60, UTC).astimezone(zone).replace(tzinfo=None)
    return (local - timedelta(hours=hours, minutes=minutes)).date()


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    time_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo(TIME_ZONE_DEFAULT))
    cutoff: time = CUTOFF_DEFAULT

    def _offset(self) -> timedelta:
        return timedelta(hours=self.cutoff.hour, minutes=self.cutoff.minute)

    def business_day(self, at: datetime) -> date:
        """The business day an instant belongs to."""
        if at.tzinfo is None:
            raise CalendarError("instants must be timezone-aware")
        # The cut-off and the zone's offset are whole minutes: one answer per minute, cached
        # (the engine asks for every cleared tap).
        return _business_day_of_minute(
            self.time_zone, self.cutoff.hour, self.cutoff.minute, int(at.timestamp()) // 60
        )

    def day_start(self, day: date) -> datetime:
        """The first instant of business day `day`, in UTC."""
        local = datetime.combine(day, self.cutoff, tzinfo=self.time_zone)
        return local.astimezone(UTC)

    def day_end(self, day: date) -> datetime:
        """The cut-off that closes business day `day` (the start of the next one), in UTC."""
        return self.day_start(day + timedelta(days=1))

    def is_closed(self, day: date, now: datetime) -> bool:
        return now >= self.day_end(day)

    def last_closed_day(self, now: datetime) -> date:
        """The latest business day whose cut-off has passed at `now`."""
        return self.business_day(now) - timedelta(days=1)

    def settlement_day(
        self, occurred_at: datetime, cleared_at: datetime, last_settled: date | None
    ) -> date:
        """Which day's settlement pays a record cleared at `cleared_at`.

        Its own business day if that day is not settled yet; a late record whose day is already
        settled goes into the first unsettled day, so a settlement never changes once posted.
        A tap time ahead of the clearing time counts as the clearing day.
        """
        return settlement_day_of(
            self.business_day(occurred_at), self.business_day(cleared_at), last_settled
        )


def settlement_day_of(business_day: date, clearing_day: date, last_settled: date | None) -> date:
    """`BusinessCalendar.settlement_day` from the two business days (a caller clearing many
    records at one moment works out the clearing day once)."""
    day = business_day if business_day < clearing_day else clearing_day
    if last_settled is not None and day <= last_settled:
        day = last_settled + _ONE_DAY
    return day


_ONE_DAY = timedelta(days=1)
