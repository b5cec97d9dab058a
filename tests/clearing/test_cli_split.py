"""The packages' own command lines agree with the back office's: the same money text, the same
business day for `terminal simulate`, and the same commands under the full `onecard`."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

import cardio.money
import ledger.money
from clearing.calendar import BusinessCalendar
from clearing.cli import app
from terminals.cli.terminal import last_closed_day

ZONES = ("Asia/Shanghai", "Europe/London", "America/New_York", "Australia/Lord_Howe", "UTC")


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_the_ledger_and_the_card_layer_write_money_alike(fen: int) -> None:
    assert ledger.money.yuan(fen) == cardio.money.yuan(fen)


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from(ZONES),
    st.integers(min_value=0, max_value=23),
    st.sampled_from((0, 15, 30, 59)),
)
def test_simulate_picks_the_day_the_clearing_calendar_calls_last_closed(
    at: datetime, zone_name: str, hour: int, minute: int
) -> None:
    zone, cutoff = ZoneInfo(zone_name), time(hour, minute)
    now = at.replace(tzinfo=UTC) + timedelta(seconds=at.microsecond % 60)
    calendar = BusinessCalendar(zone, cutoff)
    assert last_closed_day(now, zone, cutoff) == calendar.last_closed_day(now)


def test_the_full_onecard_mounts_every_packages_commands() -> None:
    names = {group.name for group in app.registered_groups} | {
        command.name for command in app.registered_commands
    }
    assert {"card", "terminal", "fares", "ledger", "registry", "db", "insight"} <= names
    card = next(group for group in app.registered_groups if group.name == "card")
    issue = next(c for c in card.typer_instance.registered_commands if c.name == "issue")
    assert issue.callback.__module__ == "clearing.cli.card_cmd"  # the one with --register
