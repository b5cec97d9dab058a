"""Bank business days (Monday to Friday): the date tolerance of the bank matcher counts them.
Pure. Public holidays are not known here: a tolerance of two bank days covers a weekend, a
holiday week needs the setting raised for that week."""

from __future__ import annotations

from datetime import date, timedelta

SATURDAY = 5  # date.weekday(): Monday 0 … Sunday 6


def bank_days_between(first: date, second: date) -> int:
    """Bank days after the earlier date up to the later one: Friday -> Monday is 1, Saturday ->
    Monday is 1, Friday -> Sunday is 0."""
    start, end = sorted((first, second))
    weeks, rest = divmod((end - start).days, 7)
    count = weeks * 5
    for offset in range(1, rest + 1):
        if (start + timedelta(days=weeks * 7 + offset)).weekday() < SATURDAY:
            count += 1
    return count


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
