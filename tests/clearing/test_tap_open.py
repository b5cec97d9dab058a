"""The open records (tap_open, migration 0010_tapopen) are exactly the records in state
`received` or `quarantined`, whoever writes tap_records: ingest, the engine, a release, a
write-off, a hand-made update. Clearing and the quarantine listings read them from there, so a
record missing from it would never clear and one left behind would be listed forever."""

from __future__ import annotations

from sqlalchemy import select, text, update

from clearing.engine.reasons import QuarantineReason as R
from clearing.engine.shards import SHARDS
from clearing.engine.synthetic import forged
from clearing.ingest.models import TapOpen, TapRecord
from clearing.quarantine import service
from tests.clearing.test_engine import (
    ADULT,
    ADULT_2,
    SENIOR,
    World,
    engine_pg_url,
    world,
    world_url,
)

__all__ = ["engine_pg_url", "world", "world_url"]


async def _states(world: World) -> tuple[dict[int, str], dict[int, str]]:
    """(every record's state, the open rows' states), by record id."""
    async with world.ledger.engine.connect() as conn:
        records = await conn.execute(select(TapRecord.id, TapRecord.state))
        opened = await conn.execute(select(TapOpen.tap_record_id, TapOpen.state))
        return (
            {int(r[0]): str(r[1].value) for r in records},
            {int(r[0]): str(r[1].value) for r in opened},
        )


async def _assert_open_is_exactly_the_open_records(world: World) -> dict[int, str]:
    records, opened = await _states(world)
    assert opened == {i: s for i, s in records.items() if s in ("received", "quarantined")}
    return records


async def test_every_transition_keeps_the_open_records(world: World) -> None:
    good, bad, other = world.ride(ADULT, 200), forged(world.ride(ADULT_2, 300)), world.ride(SENIOR)
    await world.upload([good, bad, other])
    records = await _assert_open_is_exactly_the_open_records(world)
    assert sorted(records.values()) == ["received"] * 3

    summary = await world.engine.clear_pending()
    assert (summary.posted, summary.quarantined) == (2, 1)
    records = await _assert_open_is_exactly_the_open_records(world)
    [held] = [i for i, s in records.items() if s == "quarantined"]
    async with world.ledger.engine.connect() as conn:
        listed = await service.list_quarantined(conn, reason=R.BAD_TAC)
        assert [row.id for row in listed] == [held]
        assert await service.counts_by_reason(conn) == {R.BAD_TAC.value: 1}

    async with world.ledger.transaction() as conn:  # released: waiting again
        await conn.execute(update(TapRecord).where(TapRecord.id == held).values(state="received"))
    assert (await _assert_open_is_exactly_the_open_records(world))[held] == "received"
    assert (await world.engine.clear_pending()).quarantined == 1  # and held again
    assert (await _assert_open_is_exactly_the_open_records(world))[held] == "quarantined"

    async with world.ledger.transaction() as conn:
        await service.write_off(conn, held, actor="finance:fred", note="forged, reported")
    records = await _assert_open_is_exactly_the_open_records(world)
    assert records[held] == "written_off"
    async with world.ledger.engine.connect() as conn:
        assert await service.list_quarantined(conn, reason=None) == []
    assert (await world.engine.clear_pending()).records_seen == 0


async def test_the_stored_shard_is_the_cards_shard(world: World) -> None:
    await world.upload([world.ride(card) for card in (ADULT, ADULT_2, SENIOR)])
    async with world.ledger.engine.connect() as conn:
        if conn.dialect.name != "postgresql":  # SQLite clears without shards: all in shard 0
            rows = await conn.execute(select(TapOpen.shard))
            assert set(rows.scalars()) == {0}
            return
        rows = await conn.execute(
            text(
                "SELECT o.shard, (hashtext(t.card_no) & 2147483647) % :shards FROM tap_open o"
                " JOIN tap_records t ON t.id = o.tap_record_id"
            ),
            {"shards": SHARDS},
        )
        pairs = rows.all()
    assert len(pairs) == 3 and all(stored == computed for stored, computed in pairs)
