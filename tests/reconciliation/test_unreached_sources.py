"""Stripe or a biller's service that does not answer (a URL where nothing listens) does not fail
the night's run: every other check is done, each check that needed the silent source is recorded
as not checked for the day (one `source_not_reached` break each, in the report), and a re-run
once the source answers checks it, closes those and finds each real fault once."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clearing.cli.server import app as onecard
from clearing.settings import Settings, get_settings
from reconciliation import report, service
from reconciliation.billers.source import HttpConfirmationSource
from reconciliation.checks.base import BreakKind
from reconciliation.stripe.source import StripeApiSource
from tests.clearing.test_engine import World
from tests.reconciliation.conftest import CALENDAR, past_day
from tests.reconciliation.test_stripe_billers_day import (
    BillerFiles,
    StripeAccount,
    add_bill_payment,
    open_breaks,
    reconcile,
)


def _silent_url() -> str:
    """An address where nothing listens (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_a_silent_source_leaves_its_checks_not_done_and_a_rerun_does_them(
    world: World,
) -> None:
    day = past_day(3)
    paid = await add_bill_payment(world, 1, 3_001, CALENDAR.day_start(day) + timedelta(hours=3))
    silent = _silent_url()
    stripe = StripeApiSource(Settings(stripe_secret_key="sk_test_silent", stripe_api_base=silent))
    billers = HttpConfirmationSource(Settings(biller_url=silent, biller_timeout_s=1))

    first = await reconcile(world, day, stripe, billers)  # type: ignore[arg-type]
    unreached = {c.name: c.not_reached for c in first.checks if c.not_reached}
    assert unreached == {"stripe": "stripe", "bank": "stripe", "billers": "billers"}
    assert sorted(c.name for c in first.checks) == sorted(
        ["ledger", "terminals", "cards", "stripe", "bank", "billers", "funds", "escrow_balance"]
    )  # every other check was done
    found = await open_breaks(world)
    assert sorted((b["kind"], b["key"], b["counterpart"]) for b in found) == [
        (BreakKind.SOURCE_NOT_REACHED, f"{name}:{day}", source)
        for name, source in (("bank", "stripe"), ("billers", "billers"), ("stripe", "stripe"))
    ]
    assert all(f"onecard reconcile --date {day}" in b["details"]["todo"] for b in found)
    async with world.ledger.engine.connect() as conn:
        page = report.render_html(await service.day_report(conn, day))
    assert "Not checked: stripe: not reached" in page
    assert "Not checked: billers: not reached" in page

    still = await reconcile(world, day, stripe, billers)  # type: ignore[arg-type]
    assert (still.found, still.new, still.closed) == (3, 0, 0)
    assert len(await open_breaks(world)) == 3

    # Both answer now; the biller's files do not list the bill paid: one real fault.
    answering = await reconcile(world, day, StripeAccount(), BillerFiles())
    assert not any(c.not_reached for c in answering.checks)
    assert (answering.found, answering.new, answering.closed) == (1, 1, 3)
    found = await open_breaks(world)
    assert [(b["kind"], b["key"]) for b in found] == [
        (BreakKind.BILLER_UNCONFIRMED, f"payment:{paid['id']}")
    ]
    again = await reconcile(world, day, StripeAccount(), BillerFiles())
    assert (again.found, again.new, again.closed) == (1, 0, 0)


async def test_reconcile_fails_naming_the_silent_sources_and_still_records_the_run(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    day = past_day(3)
    await add_bill_payment(world, 1, 3_001, CALENDAR.day_start(day) + timedelta(hours=3))
    silent = _silent_url()
    for name, value in (
        ("DATABASE_URL", world.url),
        ("DATA_DIR", str(tmp_path)),
        ("STRIPE_SECRET_KEY", "sk_test_silent"),
        ("STRIPE_API_BASE", silent),
        ("BILLER_URL", silent),
        ("BILLER_TIMEOUT_S", "1"),
    ):
        monkeypatch.setenv(f"ONECARD_{name}", value)
    get_settings.cache_clear()
    cli = CliRunner()
    try:
        # the command runs its own event loop: a thread
        ran = await asyncio.to_thread(cli.invoke, onecard, ["reconcile", "--date", str(day)])
    finally:
        get_settings.cache_clear()

    assert ran.exit_code == 1, ran.output
    errors = [line for line in ran.output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: source_not_reached: billers and stripe not reached, so stripe, bank, billers "
        f"not checked for {day} (run 1 and its other breaks are recorded): check the billers "
        f"and stripe settings and connection, then run `onecard reconcile --date {day}` again"
    ]
    assert "Traceback" not in ran.output
    assert "breaks: 3 found, 3 new" in ran.output  # the summary is printed before the error
    found = await open_breaks(world)  # committed: the run is not lost with the exit code
    assert sorted(b["key"] for b in found) == [f"{c}:{day}" for c in ("bank", "billers", "stripe")]
