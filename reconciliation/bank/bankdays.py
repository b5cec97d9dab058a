"""Bank business days (Monday to Friday): the date tolerance of the bank matcher counts them.
Pure. Public holidays are not known here: a tolerance of two bank days covers a weekend, a
holiday week needs the setting raised for that week."""

from __future__ import annotations

from datetime import date, timedelta

SATURDAY = 5  # date.weekday(): Monday 0 … Sunday 6


def _weekdays_through(day: date) -> int:
    """Weekdays from 0001-01-01 (a Monday, ordinal 1) up to and including `day`."""
    weeks, rest = divmod(day.toordinal(), 7)
    return weeks * 5 + min(rest, 5)


def bank_days_between(first: date, second: date) -> int:
    """Bank days after the earlier date up to the later one: Friday -> Monday is 1, Saturday ->
    Monday is 1, Friday -> Sunday is 0."""
    return abs(_weekdays_through(second) - _weekdays_through(first))


def add_bank_days(day: date, count: int) -> date:
    """`count` bank days after `day` (before it when negative), landing on a weekday; a count
    of 0 gives `day` itself."""
    step = 1 if count > 0 else -1
    moved = day
    for _ in range(abs(count)):
        moved += timedelta(days=step)
        while moved.weekday() >= SATURDAY:
            moved += timedelta(days=step)
    return moved


def calendar_days_covering(bank_days: int) -> int:
    """Calendar days that surely hold `bank_days` bank days either side of any date."""
    return bank_days + 2 * (bank_days // 5 + 1)
