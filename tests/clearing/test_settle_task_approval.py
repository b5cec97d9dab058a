"""The settlement task (beat's `clearing.settle_day`) settles closed days only: closing the day
still open early needs a second finance officer, as `onecard settle --force` and the API ask."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from clearing.calendar import BusinessCalendar
from clearing.celery_app import make_celery
from clearing.cli import app
from clearing.errors import SecondPersonRequired
from clearing.settings import Settings
from clearing.settlement.tasks import settle_task
from tests.clearing.test_settlement_cli import cli_world  # noqa: F401 (a fixture)


def _beat_kwargs() -> dict[str, object]:
    brokered = make_celery(Settings(celery_broker_url="amqp://guest:guest@127.0.0.1:5672//"))
    entry = brokered.conf.beat_schedule["settle-closed-day"]
    assert entry["task"] == settle_task.name
    return dict(entry["kwargs"])


def test_beat_settles_the_last_closed_day_and_a_forced_task_cannot_close_today(
    cli_world,  # noqa: F811
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["clear"]).exit_code == 0
    calendar = BusinessCalendar()
    now = datetime.now(UTC)
    today = calendar.business_day(now)

    by_beat = settle_task.apply(kwargs=_beat_kwargs()).get()
    assert by_beat["business_day"] == calendar.last_closed_day(now).isoformat()

    with pytest.raises(SecondPersonRequired) as refused:
        settle_task.apply(kwargs={"business_day": today.isoformat(), "force": True}).get()
    assert refused.value.code == "second_person_required"
    message = str(refused.value)
    assert f"business day {today} is still open" in message
    assert "onecard settle" in message and "early_settlement" in message
    listed = runner.invoke(app, ["settle", "--date", today.isoformat()])
    assert listed.exit_code == 1 and "cut-off" in listed.output  # the task settled nothing


def test_a_forced_task_finds_a_day_a_second_officer_closed_early_settled(
    cli_world,  # noqa: F811
) -> None:
    runner = CliRunner()
    today = BusinessCalendar().business_day(datetime.now(UTC)).isoformat()
    for name in ("ann", "ben"):
        added = runner.invoke(
            app, ["staff", "add", name, "--roles", "finance", "--password", "x" * 12]
        )
        assert added.exit_code == 0, added.output
    asked = runner.invoke(
        app, ["settle", "--date", today, "--force", "--by", "ann", "--reason", "bank holiday"]
    )
    assert asked.exit_code == 0 and "request #1" in asked.output, asked.output
    with pytest.raises(SecondPersonRequired):  # asked is not approved
        settle_task.apply(kwargs={"business_day": today, "force": True}).get()
    approved = runner.invoke(app, ["approvals", "approve", "1", "--by", "ben"])
    assert approved.exit_code == 0, approved.output

    settled = settle_task.apply(kwargs={"business_day": today, "force": True}).get()
    assert settled["business_day"] == today and settled["already_settled"]
