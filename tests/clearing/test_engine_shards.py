"""Clearing split by card shards (several workers at once) ends exactly where one worker ends:
the same transfers, each card's in the same order with the same balances, the same records
cleared and quarantined for the same reasons; the ledger's timestamps stay one global order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from clearing.engine.service import ClearingEngine, EngineConfig, EngineError, load_verifier
from clearing.engine.shards import ALL_SHARDS, SHARDS, ShardRangeInvalid, split
from ledger.writer import Ledger
from tests.clearing.test_engine import (
    ADULT,
    ADULT_2,
    BUS_TERMINAL,
    BUS_TERMINAL_2,
    SENIOR,
    STUDENT,
    World,
    _reset_pg,
    build_world,
    engine_pg_url,
)

__all__ = ["engine_pg_url"]

DAY = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
STAGED = 26  # 20 rides, 4 of them uploaded twice, 2 card counters used twice


def test_split_covers_every_shard_once_in_contiguous_ranges() -> None:
    for workers in range(1, SHARDS + 1):
        ranges = split(workers)
        assert len(ranges) == workers
        assert ranges[0][0] == 0 and ranges[-1][1] == SHARDS
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
        assert all(low < high for low, high in ranges)
    with pytest.raises(ShardRangeInvalid):
        split(SHARDS + 1)


def _counter_reused(world: World, record: dict[str, Any], terminal: str) -> dict[str, Any]:
    """Another debit under the same card counter (a genuine TAC, another amount): whichever of
    the two is cleared first posts, the other is quarantined."""
    other = dict(record, amount_fen=record["amount_fen"] + 50)
    other["balance_after_fen"] = record["balance_before_fen"] - other["amount_fen"]
    other["terminal_seq"] = world.next_seq(terminal)
    at = datetime.fromisoformat(other["occurred_at"])
    other["tac"] = world.signer.purchase_tac(
        other["card_no"], other["amount_fen"], other["txn_type"], terminal,
        other["terminal_seq"], at,
    )  # fmt: skip
    return other


async def _stage_day(world: World) -> None:
    """Each card's rides over two terminals, re-sent records, and a card counter used twice
    (which of the two posts depends on the order the card's records are cleared in)."""
    records: dict[str, list[dict[str, Any]]] = {BUS_TERMINAL: [], BUS_TERMINAL_2: []}
    minute = 0
    for round_no in range(5):
        for card_no in (ADULT, ADULT_2, SENIOR, STUDENT):
            terminal = BUS_TERMINAL if (minute % 3) else BUS_TERMINAL_2
            at = DAY + timedelta(minutes=minute)
            ride = world.ride(card_no, 150 + round_no, terminal_id=terminal, at=at)
            records[terminal].append(ride)
            minute += 1
    reused = [_counter_reused(world, records[BUS_TERMINAL][n], BUS_TERMINAL) for n in (1, 8)]
    for terminal, journal in records.items():
        await world.upload(journal[:7], terminal_id=terminal)
        await world.upload(journal[7:], terminal_id=terminal)
        await world.upload(journal[2:4], terminal_id=terminal)  # re-sent: duplicates
    await world.upload(reused, terminal_id=BUS_TERMINAL)


async def _outcome(world: World) -> dict[str, Any]:
    async with world.ledger.engine.connect() as conn:
        transfers = (
            await conn.execute(
                text(
                    "SELECT a.name, t.id, t.amount, t.code, t.user_data_32, t.dr_debits_posted,"
                    " t.timestamp FROM ledger_transfers t JOIN ledger_accounts a"
                    " ON a.id = t.debit_account_id WHERE a.name LIKE 'card:%'"
                    " AND t.code <> (SELECT min(code) FROM ledger_transfers) ORDER BY t.timestamp"
                )
            )
        ).all()
        records = (
            await conn.execute(
                text(
                    "SELECT terminal_id, terminal_seq, record_index, state, quarantine_reason"
                    " FROM tap_records ORDER BY 1, 2, 3"
                )
            )
        ).all()
    per_card: dict[str, list[tuple[Any, ...]]] = {}
    for name, transfer_id, amount, code, counter, debited, _ in transfers:
        per_card.setdefault(name, []).append((transfer_id, amount, code, counter, debited))
    stamps = [row[-1] for row in transfers]
    assert stamps == sorted(set(stamps))  # one global order, no two transfers at one instant
    return {"per_card": per_card, "records": [tuple(r) for r in records]}


async def _clear_split(world: World, key_path: Path, workers: int) -> list[int]:
    ledgers = [await Ledger.open(world.url) for _ in range(workers)]
    try:
        engines = [
            ClearingEngine(ledger, load_verifier(key_path), EngineConfig(chunk_records=3))
            for ledger in ledgers
        ]
        summaries = await asyncio.gather(
            *(e.clear_pending(shards=s) for e, s in zip(engines, split(workers), strict=True))
        )
    finally:
        for ledger in ledgers:
            await ledger.close()
    return [s.records_seen for s in summaries]


@pytest.mark.postgres
async def test_two_workers_clear_what_one_clears(engine_pg_url: str, tmp_path: Path) -> None:
    outcomes = []
    for workers in (1, 2):
        await _reset_pg(engine_pg_url)
        home = tmp_path / f"w{workers}"
        home.mkdir()
        world = await build_world(engine_pg_url, home, chunk_records=3)
        try:
            await _stage_day(world)
            seen = await _clear_split(world, home / "keys.json", workers)
            assert sum(seen) == STAGED
            assert all(seen)  # each worker had cards of its own to clear
            states = await world.states()
            assert set(states) == {"cleared", "quarantined"}
            assert await world.reasons() == ["counter_reused_different_amount"] * 2
            outcomes.append(await _outcome(world))
        finally:
            await world.ledger.close()
    assert outcomes[0] == outcomes[1]
    assert len(outcomes[0]["per_card"]) == 4


@pytest.mark.postgres
async def test_two_runs_on_overlapping_shards_still_clear_each_record_once(
    engine_pg_url: str, tmp_path: Path
) -> None:
    await _reset_pg(engine_pg_url)
    world = await build_world(engine_pg_url, tmp_path, chunk_records=2)
    try:
        await _stage_day(world)
        other = await Ledger.open(world.url)
        try:
            second = ClearingEngine(
                other, load_verifier(tmp_path / "keys.json"), EngineConfig(chunk_records=2)
            )
            a, b = await asyncio.gather(
                world.engine.clear_pending(shards=ALL_SHARDS),
                second.clear_pending(shards=(10, 32)),
            )
        finally:
            await other.close()
        assert a.records_seen + b.records_seen == STAGED
        assert a.posted + b.posted == 20 and a.duplicates + b.duplicates == 4
        assert await world.states() == {"cleared": 24, "quarantined": 2}
    finally:
        await world.ledger.close()


async def test_a_shard_range_is_checked_and_needs_postgresql(
    sqlite_url: str, tmp_path: Path
) -> None:
    world = await build_world(sqlite_url, tmp_path)
    try:
        with pytest.raises(EngineError, match="shard range"):
            await world.engine.clear_pending(shards=(4, 4))
        with pytest.raises(EngineError, match="needs PostgreSQL"):
            await world.engine.clear_pending(shards=(0, 16))
        assert (await world.engine.clear_pending(shards=ALL_SHARDS)).records_seen == 0
    finally:
        await world.ledger.close()
