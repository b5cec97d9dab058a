"""The offline checker finds corruption made behind the ledger's back, and the database itself
refuses edits of transfers (triggers) and violated flags (CHECK constraints)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from ledger.check import check_ledger
from tests.ledger.helpers import books_with_history, xfer


async def _report(url: str):
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await check_ledger(conn)
    finally:
        await engine.dispose()


async def _execute(url: str, *statements: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


def _onecard_check(url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ONECARD_LEDGER_DATABASE_URL": url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", "check"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def own_db(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "fresh_pg_url"
    return request.getfixturevalue(name)


async def test_clean_ledger_passes_and_the_command_exits_zero(own_db, ns):
    await books_with_history(own_db, ns)
    report = await _report(own_db)
    assert report.ok and report.transfers_checked == 2 and report.accounts_checked == 6
    done = _onecard_check(own_db)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ledger OK" in done.stdout


async def test_edited_balance_is_reported_by_account_and_the_command_fails(own_db, ns):
    await books_with_history(own_db, ns)
    await _execute(
        own_db,
        f"UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE name = '{ns}:merchant'",
    )
    report = await _report(own_db)
    kinds = {(p.kind, p.subject) for p in report.problems}
    assert ("balance_mismatch", f"{ns}:merchant") in kinds
    assert ("ledger_unbalanced", "ledger 1") in kinds
    assert any("credits_posted is 301" in p.detail for p in report.problems)
    done = _onecard_check(own_db)
    assert done.returncode == 1
    assert "balance_mismatch" in done.stdout and f"{ns}:merchant" in done.stdout


async def test_transfer_edited_with_the_trigger_disabled_is_reported(own_db, ns):
    books = await books_with_history(own_db, ns)
    tap_id = xfer(ns, "tap", books["card"], books["merchant"], 300).id
    where = f"id = '{tap_id:032x}'"
    if own_db.startswith("postgresql"):
        where = f"id = '{tap_id:032x}'::uuid"
        disable = "ALTER TABLE ledger_transfers DISABLE TRIGGER ledger_transfers_immutable"
    else:
        disable = "DROP TRIGGER ledger_transfers_no_update"
    await _execute(own_db, disable, f"UPDATE ledger_transfers SET amount = 310 WHERE {where}")
    report = await _report(own_db)
    subjects = {p.subject for p in report.problems if p.kind == "balance_mismatch"}
    assert subjects == {f"{ns}:card", f"{ns}:merchant"}


async def test_flag_violation_is_reported_when_the_constraint_is_gone(fresh_pg_url, ns):
    await books_with_history(fresh_pg_url, ns)
    await _execute(
        fresh_pg_url,
        "ALTER TABLE ledger_accounts DROP CONSTRAINT"
        " ck_ledger_accounts_credits_must_not_exceed_debits",
        f"UPDATE ledger_accounts SET flags = 4 WHERE name = '{ns}:merchant'",
    )
    report = await _report(fresh_pg_url)
    assert [p.subject for p in report.problems if p.kind == "flag_violated"] == [f"{ns}:merchant"]


async def test_database_refuses_update_and_delete_of_transfers(own_db, ns):
    await books_with_history(own_db, ns)
    for statement in ("UPDATE ledger_transfers SET amount = 1", "DELETE FROM ledger_transfers"):
        with pytest.raises(DBAPIError, match="immutable"):
            await _execute(own_db, statement)
    assert (await _report(own_db)).ok


async def test_database_refuses_an_overdraft_written_behind_the_ledger(own_db, ns):
    await books_with_history(own_db, ns)
    with pytest.raises(IntegrityError):
        await _execute(
            own_db, f"UPDATE ledger_accounts SET debits_posted = 5000 WHERE name = '{ns}:card'"
        )


async def test_repeated_timestamp_is_reported(fresh_pg_url, ns):
    books = await books_with_history(fresh_pg_url, ns)
    tap_id = xfer(ns, "tap", books["card"], books["merchant"], 300).id
    load_id = xfer(ns, "load", books["bank"], books["card"], 1_000).id
    await _execute(
        fresh_pg_url,
        "ALTER TABLE ledger_transfers DISABLE TRIGGER ledger_transfers_immutable",
        "UPDATE ledger_transfers SET timestamp = (SELECT timestamp FROM ledger_transfers"
        f" WHERE id = '{load_id:032x}'::uuid) WHERE id = '{tap_id:032x}'::uuid",
    )
    report = await _report(fresh_pg_url)
    assert "timestamp_duplicated" in report.counts
