"""No record may stop clearing: a re-sent serial, two cards under one serial, a record the
database refuses. Each is quarantined with its reason (and the other record, or the error) and
everything behind it clears, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from clearing import books
from clearing.cli import app
from clearing.engine.models import QuarantineActionRow
from clearing.engine.reasons import QuarantineReason as R
from clearing.engine.service import DatabaseFailed, EngineConfig, RunSummary
from clearing.ingest.models import TapRecord
from clearing.settings import get_settings
from tests.clearing.test_engine import (
    ADULT,
    ADULT_2,
    BUS_TERMINAL,
    SENIOR,
    World,
    engine_pg_url,
    world,
    world_url,
)

__all__ = ["engine_pg_url", "world", "world_url"]

# The failures these tests mimic exist on PostgreSQL only (SQLite reports every trigger abort as
# a constraint, and has one writer, so no deadlock): they run on PostgreSQL alone.
ON_POSTGRESQL_ONLY = pytest.mark.parametrize(
    "world_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def resent_with_another_counter(record: dict[str, Any]) -> dict[str, Any]:
    """The terminal re-sends its record under the same serial with the next card counter (and
    balance pair): the purchase TAC covers neither, so the TAC still verifies."""
    out = dict(record)
    out["card_counter"] = record["card_counter"] + 1
    out["balance_before_fen"] = record["balance_before_fen"] - 50
    out["balance_after_fen"] = record["balance_after_fen"] - 50
    return out


async def notes_of(world: World, reason: R) -> list[str]:
    async with world.ledger.engine.connect() as conn:
        rows = await conn.execute(
            select(QuarantineActionRow.note)
            .join(TapRecord, TapRecord.id == QuarantineActionRow.tap_record_id)
            .where(TapRecord.quarantine_reason == reason.value)
            .order_by(QuarantineActionRow.id)
        )
        return list(rows.scalars())


async def test_a_serial_resent_with_another_card_counter_is_quarantined_and_clearing_goes_on(
    world: World,
) -> None:
    first = world.ride(ADULT, 200)
    await world.upload([first])
    assert (await world.engine.clear_pending()).posted == 1
    behind = world.ride(ADULT_2, 300)
    await world.upload([resent_with_another_counter(first), behind])
    summary = await world.engine.clear_pending()
    assert (summary.posted, summary.quarantined) == (1, 1)
    assert await world.reasons() == [R.TERMINAL_SEQ_REUSED]
    [note] = await notes_of(world, R.TERMINAL_SEQ_REUSED)
    assert "tap record 1:" in note and "counter 0" in note and "counter 1" in note
    assert await world.balance(books.card(ADULT)) == 10_000 - 200
    assert await world.balance(books.card(ADULT_2)) == 10_000 - 300
    assert (await world.engine.clear_pending()).records_seen == 0  # and reruns are clean


async def test_two_cards_under_one_terminal_serial_in_one_chunk_post_once(world: World) -> None:
    at = datetime.now(UTC) - timedelta(hours=2)
    first = world.ride(ADULT, 200, at=at)
    world.seq[BUS_TERMINAL] -= 1  # a second terminal with the same id reuses the serial
    second = world.ride(ADULT_2, 200, at=at)
    assert second["terminal_seq"] == first["terminal_seq"]
    behind = world.ride(SENIOR, 150)
    await world.upload([first, second, behind])
    summary = await world.engine.clear_pending()
    assert (summary.posted, summary.quarantined) == (2, 1)
    assert await world.reasons() == [R.TERMINAL_SEQ_REUSED]
    assert await world.balance(books.payable("bus-1")) == 200 + 150
    [note] = await notes_of(world, R.TERMINAL_SEQ_REUSED)
    assert ADULT in note and ADULT_2 in note  # both records shown


async def test_two_cards_under_one_terminal_serial_across_runs_post_once(world: World) -> None:
    at = datetime.now(UTC) - timedelta(hours=2)
    first = world.ride(ADULT, 200, at=at)
    world.seq[BUS_TERMINAL] -= 1
    second = world.ride(ADULT_2, 200, at=at)
    await world.upload([first])
    await world.engine.clear_pending()
    await world.upload([second, world.ride(SENIOR, 150)])
    summary = await world.engine.clear_pending()
    assert (summary.posted, summary.quarantined) == (1, 1)
    assert await world.reasons() == [R.TERMINAL_SEQ_REUSED]


async def _refuse_cleared_row(world: World, card_no: str, counter: int, sqlstate: str) -> None:
    """A rule the database enforces and the engine does not know of: it refuses one posted row
    (PostgreSQL raises `sqlstate`; SQLite aborts, which it reports as a constraint failure)."""
    async with world.ledger.engine.begin() as conn:
        if world.url.startswith("postgresql"):
            await conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN"
                    f" IF NEW.card_no = '{card_no}' AND NEW.card_counter = {counter} THEN"
                    f" RAISE EXCEPTION 'refused by a test rule' USING ERRCODE = '{sqlstate}';"
                    " END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse_one BEFORE INSERT ON cleared_taps"
                    " FOR EACH ROW EXECUTE FUNCTION refuse_one()"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse_one BEFORE INSERT ON cleared_taps"
                    f" WHEN NEW.card_no = '{card_no}' AND NEW.card_counter = {counter}"
                    " BEGIN SELECT RAISE(ABORT, 'refused by a test rule'); END"
                )
            )


async def _drop_refusal(world: World) -> None:
    async with world.ledger.engine.begin() as conn:
        await conn.execute(text("DROP TRIGGER IF EXISTS refuse_one" + _on(world)))


def _on(world: World) -> str:
    return " ON cleared_taps" if world.url.startswith("postgresql") else ""


@pytest.mark.parametrize("chunk", [4000, 2])  # one chunk; chunks read ahead on PostgreSQL
async def test_a_record_the_database_refuses_is_quarantined_with_the_error(
    world: World, chunk: int
) -> None:
    world.engine.config = EngineConfig(chunk_records=chunk)
    rides = [world.ride(card, 100) for card in (ADULT, ADULT_2, SENIOR, ADULT, ADULT_2)]
    await _refuse_cleared_row(world, ADULT_2, 1, "23514")
    try:
        await world.upload(rides)
        summary = await world.engine.clear_pending()
    finally:
        await _drop_refusal(world)
    assert (summary.records_seen, summary.posted, summary.quarantined) == (5, 4, 1)
    assert summary.reasons == {R.RECORD_FAILED.value: 1}
    assert await world.reasons() == [R.RECORD_FAILED]
    [note] = await notes_of(world, R.RECORD_FAILED)
    assert "refused by a test rule" in note
    assert await world.balance(books.card(ADULT)) == 10_000 - 200
    assert await world.balance(books.card(ADULT_2)) == 10_000 - 100  # its refused ride not taken
    assert await world.balance(books.payable("bus-1")) == 400
    assert (await world.engine.clear_pending()).records_seen == 0


@ON_POSTGRESQL_ONLY
async def test_a_database_failure_stops_the_run_cleanly_and_the_next_run_resumes(
    world: World,
) -> None:
    world.engine.config = EngineConfig(chunk_records=2)
    rides = [world.ride(card, 100) for card in (ADULT, ADULT_2, SENIOR, ADULT_2, ADULT)]
    await world.upload(rides)
    await _refuse_cleared_row(world, SENIOR, 0, "53100")  # disk full, on the second chunk
    try:
        with pytest.raises(DatabaseFailed, match="run the clearing again to resume"):
            await world.engine.clear_pending()
    finally:
        await _drop_refusal(world)
    assert await world.states() == {"cleared": 2, "received": 3}  # the first chunk is kept
    summary = await world.engine.clear_pending()
    assert (summary.records_seen, summary.posted, summary.quarantined) == (3, 3, 0)
    assert await world.balance(books.payable("bus-1")) == 500


@ON_POSTGRESQL_ONLY
async def test_the_clear_command_reports_a_database_failure_in_one_line(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await world.upload([world.ride(card, 100) for card in (ADULT, ADULT_2, SENIOR)])
    await _refuse_cleared_row(world, ADULT_2, 0, "53100")  # disk full
    monkeypatch.setenv("ONECARD_DATABASE_URL", world.url)
    monkeypatch.setenv("ONECARD_KEY_STORE", str(tmp_path / "keys.json"))
    get_settings.cache_clear()
    try:
        result = await asyncio.to_thread(CliRunner().invoke, app, ["clear"])
    finally:
        get_settings.cache_clear()
        await _drop_refusal(world)
    said = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "the database failed" in said and "run the clearing again to resume" in said
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


async def _deadlock_on(world: World, card_no: str, times: int) -> None:
    """The database fails the transaction writing this card's row as one side of a deadlock,
    the first `times` times (a sequence counts them: it is not rolled back with the chunk)."""
    async with world.ledger.engine.begin() as conn:
        await conn.execute(text("CREATE SEQUENCE IF NOT EXISTS deadlocks_fired"))
        await conn.execute(
            text(
                "CREATE OR REPLACE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN"
                f" IF NEW.card_no = '{card_no}' AND nextval('deadlocks_fired') <= {times} THEN"
                " RAISE EXCEPTION 'deadlock detected (a test rule)' USING ERRCODE = '40P01';"
                " END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER refuse_one BEFORE INSERT ON cleared_taps"
                " FOR EACH ROW EXECUTE FUNCTION refuse_one()"
            )
        )


async def _clear_with_deadlocks(world: World, times: int) -> RunSummary:
    """Four rides in chunks of two; the chunk holding the senior's fails `times` times."""
    world.engine.config = EngineConfig(chunk_records=2)
    await world.upload([world.ride(card, 100) for card in (ADULT, ADULT_2, SENIOR, ADULT)])
    await _deadlock_on(world, SENIOR, times=times)
    try:
        return await world.engine.clear_pending()
    finally:
        await _drop_refusal(world)


@ON_POSTGRESQL_ONLY
async def test_a_chunk_failed_by_a_deadlock_is_cleared_again(world: World) -> None:
    """Two workers' chunks can wait for each other (a terminal serial reused across shards):
    PostgreSQL fails one of them; its chunk is cleared again, once, and nothing is quarantined."""
    summary = await _clear_with_deadlocks(world, times=2)
    assert (summary.records_seen, summary.posted, summary.quarantined) == (4, 4, 0)
    assert await world.states() == {"cleared": 4}
    assert await world.balance(books.payable("bus-1")) == 400


@ON_POSTGRESQL_ONLY
async def test_a_deadlock_every_time_stops_the_run_cleanly(world: World) -> None:
    with pytest.raises(DatabaseFailed, match="run the clearing again to resume"):
        await _clear_with_deadlocks(world, times=1_000)
    assert await world.states() == {"cleared": 2, "received": 2}  # the first chunk is kept


async def test_a_chunk_reads_only_its_own_terminals(world: World) -> None:
    """A metropolis has tens of thousands of terminals: a chunk looks up those its records name
    (an unknown one is absent: its records are quarantined as unknown_terminal), on both
    backends."""
    from clearing.engine import repository as repo
    from clearing.engine.decide import TerminalInfo
    from tests.clearing.test_engine import CLINIC_TERMINAL

    async with world.ledger.transaction() as conn:
        found = await repo.terminal_infos(conn, [BUS_TERMINAL, "FFFFFFFFFFFF", BUS_TERMINAL])
        assert list(found) == [BUS_TERMINAL]
        assert found[BUS_TERMINAL] == TerminalInfo("bus-1", "bus", found[BUS_TERMINAL].line)
        assert await repo.terminal_infos(conn, []) == {}
        both = await repo.terminal_infos(conn, {CLINIC_TERMINAL, BUS_TERMINAL})
        assert sorted(both) == sorted([CLINIC_TERMINAL, BUS_TERMINAL])
        assert both[CLINIC_TERMINAL].kind == "clinic"
