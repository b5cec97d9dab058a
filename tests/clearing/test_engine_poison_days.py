"""Staged days with planted poison, by Hypothesis: reused serials, the same card counter twice,
counters out of order, impossible balances, and rows stored with a wrong value (on SQLite, a
wrong type) in any field. Clearing always completes, every staged record ends cleared or
quarantined, staged = posted + duplicates + voided + quarantined, and the books agree."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from clearing import books
from clearing.engine.models import ClearedTap
from clearing.ingest.models import IngestBatch
from tests.clearing.test_engine import (
    ADULT,
    ADULT_2,
    BUS_TERMINAL,
    SENIOR,
    STUDENT,
    World,
    _reset_pg,
    build_world,
    engine_pg_url,
)
from tests.clearing.test_engine_poison import resent_with_another_counter

__all__ = ["engine_pg_url"]

CARDS = (ADULT, ADULT_2, SENIOR, STUDENT)
NOW = datetime.now(UTC).replace(microsecond=0)

# Values a row may hold that the ingest API would never stage: each fits its column's type on
# PostgreSQL (so it can be stored there too) but breaks the protocol. (`kind` and `status` are
# the only fields the table itself checks, so no wrong value of theirs can be stored.)
WRONG_VALUES: dict[str, list[Any]] = {
    "terminal_id": ["FFFFFFFFFFFF", "", "not-hex!"],
    "terminal_seq": [0, -5, 2**40, 2**63 - 1],
    "card_no": ["ABCDEFGHIJKLMNOP", "9999999999999999", ""],
    "card_counter": [-1, 70_000, 2**31 - 1, -(2**31)],
    "txn_type": [99, -1],
    "amount_fen": [-100, 2**40, 2**63 - 1],
    "balance_before_fen": [-1, 2**40],
    "balance_after_fen": [-1, 2**62],
    "occurred_at": [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)],
    "tac": ["ZZZZZZZZ", "12", None],
    "card_type": ["alien"],
    "full_fare_fen": [-1, 2**40],
    "insured_fen": [-1],
    "visit_id": ["V-nowhere"],
    "load_id": ["L-nowhere"],
}
# On SQLite any column takes any type: these are stored as they are.
WRONG_TYPES: list[Any] = ["seven", 3.5, b"\x00\xff", True]


@dataclass(frozen=True)
class Plant:
    """One thing done to the day: a genuine ride, or a ride with poison planted in it."""

    kind: str  # ride | duplicate | resend | clone | balances | wrong_value | wrong_type
    card: int
    amount_fen: int
    field: str = ""
    value_index: int = 0


plants = st.builds(
    Plant,
    kind=st.sampled_from(
        ["ride", "ride", "ride", "duplicate", "resend", "clone", "balances", "wrong_value"]
        + ["wrong_type"]
    ),
    card=st.integers(0, len(CARDS) - 1),
    amount_fen=st.integers(0, 300),
    field=st.sampled_from(sorted(WRONG_VALUES)),
    value_index=st.integers(0, 3),
)


def _planted(world: World, plant: Plant, day: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records `plant` adds to the day (as the terminal would upload them)."""
    card_no = CARDS[plant.card]
    at = NOW - timedelta(hours=1, minutes=len(day))
    ride = world.ride(card_no, plant.amount_fen, at=at, full_fare_fen=plant.amount_fen)
    if plant.kind == "duplicate":
        return [ride, dict(ride)]
    if plant.kind == "resend":
        return [ride, resent_with_another_counter(ride)]
    if plant.kind == "clone":
        card = world.cards[card_no]
        card.offline_counter -= 1  # the same card counter spent twice
        card.balance_fen += plant.amount_fen
        return [ride, world.ride(card_no, plant.amount_fen, at=at, full_fare_fen=plant.amount_fen)]
    if plant.kind == "balances":  # the TAC does not cover them: only the engine can tell
        return [dict(ride, balance_before_fen=ride["balance_before_fen"] + 7)]
    return [ride]


def _raw_row(record: dict[str, Any], batch_pk: int, index: int) -> dict[str, Any]:
    row = dict(record)
    row.update(
        terminal_id=BUS_TERMINAL,
        batch_pk=batch_pk,
        record_index=index,
        state="received",
        quarantine_reason=None,
        received_at=NOW,
        state_changed_at=NOW,
        occurred_at=datetime.fromisoformat(record["occurred_at"]),
    )
    return row


def _poison(row: dict[str, Any], plant: Plant, sqlite: bool) -> dict[str, Any]:
    if plant.kind == "wrong_type" and sqlite:
        row[plant.field] = WRONG_TYPES[plant.value_index % len(WRONG_TYPES)]
    else:
        values = WRONG_VALUES[plant.field]
        row[plant.field] = values[plant.value_index % len(values)]
    return row


def _stored(value: Any, sqlite: bool) -> Any:
    """A value as the column stores it (SQLite keeps timestamps as UTC ISO text)."""
    if sqlite and isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


async def _stage_raw(world: World, rows: list[dict[str, Any]], sqlite: bool) -> None:
    if not rows:
        return
    names = sorted(rows[0])
    statement = text(
        f"INSERT INTO tap_records ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"
    )
    async with world.ledger.transaction() as conn:
        await conn.execute(statement, [{n: _stored(r[n], sqlite) for n in names} for r in rows])


async def _clear_a_day(url: str, keys: Path, day_plan: list[Plant], order: list[int], chunk: int):  # type: ignore[no-untyped-def]
    sqlite = url.startswith("sqlite")
    if not sqlite:
        await _reset_pg(url)
    world = await build_world(url, keys, chunk_records=chunk)
    try:
        uploads: list[dict[str, Any]] = []
        raw: list[tuple[dict[str, Any], Plant]] = []
        for plant in day_plan:
            records = _planted(world, plant, uploads)
            if plant.kind in ("wrong_value", "wrong_type"):
                raw.append((records[0], plant))
            else:
                uploads.extend(records)
        # Counters out of order: the day's records arrive in any order, in several batches.
        shuffled = [uploads[i] for i in order if i < len(uploads)]
        for start in range(0, len(shuffled), 5):
            await world.upload(shuffled[start : start + 5])
        await world.upload([world.ride(ADULT, 1, full_fare_fen=1)])  # a batch for the raw rows
        async with world.ledger.engine.connect() as conn:
            batch_pk = (await conn.execute(select(func.max(IngestBatch.id)))).scalar()
        rows = [
            _poison(_raw_row(record, batch_pk, 1000 + n), plant, sqlite)
            for n, (record, plant) in enumerate(raw)
        ]
        await _stage_raw(world, rows, sqlite)
        staged = sum((await world.states()).values())
        first = await world.engine.clear_pending()
        again = await world.engine.clear_pending()
        states = await world.states()
        async with world.ledger.engine.connect() as conn:
            cleared_rows = (
                await conn.execute(select(func.count()).select_from(ClearedTap))
            ).scalar()
        spent = [10_000 - await world.balance(books.card(card_no)) for card_no in CARDS]
        payable = await world.balance(books.payable("bus-1"))
        return staged, first, again, states, cleared_rows, spent, payable
    finally:
        await world.ledger.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def template_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "engine_pg_url"
    return request.getfixturevalue(name)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    day_plan=st.lists(plants, min_size=1, max_size=14),
    order=st.permutations(list(range(30))),
    chunk=st.integers(1, 9),
)
def test_clearing_a_poisoned_day_always_completes_and_accounts_for_every_record(
    template_url: str, day_plan: list[Plant], order: list[int], chunk: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = template_url
        if url.startswith("sqlite"):  # a fresh copy of the migrated database per example
            copy = Path(tmp) / "onecard.db"
            shutil.copy(url.split("///", 1)[1], copy)
            url = f"sqlite+aiosqlite:///{copy.as_posix()}"
        staged, first, again, states, cleared_rows, spent, payable = asyncio.run(
            _clear_a_day(url, Path(tmp), day_plan, order, chunk)
        )
    assert states.get("received", 0) == 0, states
    assert staged == states.get("cleared", 0) + states.get("quarantined", 0)
    assert staged == first.posted + first.duplicates + first.voided + first.quarantined
    assert first.records_seen == staged and again.records_seen == 0
    assert cleared_rows == first.posted + again.resolved
    assert all(s >= 0 for s in spent)
    assert payable == sum(spent) == first.amount_fen_posted
