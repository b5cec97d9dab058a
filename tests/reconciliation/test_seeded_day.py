"""A seeded day with one fault of each kind the ledger, terminal and card checks know: each is
exactly one break of the right kind and nothing else; when the missing data arrives, a re-run
closes exactly the breaks it resolves and keeps the others with their history."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from clearing.engine.reasons import QuarantineReason
from clearing.engine.synthetic import SyntheticCard, forged
from clearing.quarantine import service as quarantine
from reconciliation import repository
from reconciliation.checks.base import BreakKind
from reconciliation.models import break_events
from tests.clearing.test_engine import BUS_TERMINAL, BUS_TERMINAL_2, World
from tests.reconciliation.conftest import CALENDAR, past_day, reconcile

ADULT, CLONED, SKIPPER, QUIET = (f"31000000000000{n:02d}" for n in range(4))


class Clock:
    def __init__(self, start: datetime) -> None:
        self.at = start

    def __call__(self) -> datetime:
        self.at += timedelta(minutes=3)
        return self.at


async def clear(world: World, records: list[dict[str, Any]], batch_id: str, **kw: Any) -> None:
    await world.upload(records, batch_id=batch_id, **kw)
    await world.engine.clear_pending()


async def seed_faults(world: World, tick: Clock) -> dict[str, list[dict[str, Any]]]:
    """The faulty day; returns what was held back (to upload later)."""
    b1 = [
        world.ride(ADULT, 200, at=tick()),
        world.ride(ADULT, 300, at=tick()),
        world.ride(CLONED, 200, at=tick()),
        world.ride(SKIPPER, 200, at=tick()),
    ]
    await clear(world, b1, "b1")
    never_sent = [world.ride(QUIET, 150, at=tick()), world.ride(QUIET, 150, at=tick())]
    copy = SyntheticCard(
        CLONED, world.cards[CLONED].balance_fen, "adult", world.cards[CLONED].offline_counter
    )
    skipped = [world.ride(SKIPPER, 200, terminal_id=BUS_TERMINAL_2, at=tick()) for _ in range(4)]
    b3 = [
        world.ride(ADULT, 200, at=tick()),
        world.ride(CLONED, 200, at=tick()),
        world.ride(SKIPPER, 200, at=tick()),
    ]
    await clear(world, b3, "b3")
    genuine = world.cards[CLONED]
    world.cards[CLONED] = copy  # the clone: same number, its own balance from here on
    b4 = [world.ride(CLONED, 300, at=tick()), world.ride(ADULT, 100, at=tick())]
    world.cards[CLONED] = genuine
    await clear(world, b4, "b4")
    await clear(world, [forged(b1[1], amount_fen=1)], "b5")  # altered under the old TAC
    await clear(world, b1, "b1-again")  # the whole batch sent again under a new id
    return {"never_sent": never_sent, "skipped": skipped}


def kinds(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(r["kind"] for r in rows)


async def open_breaks(world: World) -> list[dict[str, Any]]:
    async with world.ledger.engine.connect() as conn:
        return await repository.list_breaks(conn, statuses=["open", "assigned", "explained"])


async def test_each_fault_is_one_break_and_arriving_data_closes_exactly_its_own(
    world: World,
) -> None:
    day = past_day(2)
    tick = Clock(CALENDAR.day_start(day) + timedelta(hours=2))
    held_back = await seed_faults(world, tick)

    first = await reconcile(world, day)
    found = await open_breaks(world)
    assert kinds(found) == sorted(
        [
            BreakKind.TERMINAL_GAP,
            BreakKind.BATCH_DUPLICATED,
            BreakKind.TAP_FORGED,
            BreakKind.CARD_CLONE_SUSPECTED,
            BreakKind.CARD_COUNTER_GAP,
        ]
    ), found
    by_kind = {r["kind"]: r for r in found}
    assert by_kind[BreakKind.TERMINAL_GAP]["counterpart"] == BUS_TERMINAL
    assert by_kind[BreakKind.TERMINAL_GAP]["details"]["missing"] == 2
    assert by_kind[BreakKind.CARD_CLONE_SUSPECTED]["counterpart"] == CLONED
    assert by_kind[BreakKind.CARD_CLONE_SUSPECTED]["amount_fen"] == 300  # the clone's own tap
    assert by_kind[BreakKind.CARD_CLONE_SUSPECTED]["details"]["proposal"] == "deny"
    assert by_kind[BreakKind.CARD_COUNTER_GAP]["counterpart"] == SKIPPER
    assert by_kind[BreakKind.CARD_COUNTER_GAP]["amount_fen"] == 800  # four taps of 200
    assert by_kind[BreakKind.TAP_FORGED]["amount_fen"] == 1
    assert (first.found, first.new, first.closed) == (5, 5, 0)
    assert {c.name: c.matched < c.total for c in first.checks} == {
        "ledger": False,
        "terminals": True,
        "cards": True,
        "stripe": False,  # no Stripe key, nothing charged (test_stripe_billers_day.py)
        "bank": False,  # nothing settled, no statement: nothing to match
        "billers": False,  # no bill paid
        "funds": False,
        "escrow_balance": False,  # no statement with a closing balance
    }

    again = await reconcile(world, day)  # idempotent: the same breaks, nothing new
    assert (again.found, again.new, again.closed) == (5, 0, 0)
    assert [r["id"] for r in await open_breaks(world)] == [r["id"] for r in found]

    await clear(world, held_back["never_sent"], "b2")
    await clear(world, held_back["skipped"], "t2-b1", terminal_id=BUS_TERMINAL_2)
    closing = await reconcile(world, day)
    assert closing.closed == 2
    still = await open_breaks(world)
    assert kinds(still) == sorted(
        [BreakKind.BATCH_DUPLICATED, BreakKind.TAP_FORGED, BreakKind.CARD_CLONE_SUSPECTED]
    )
    async with world.ledger.engine.connect() as conn:
        gap_id = by_kind[BreakKind.TERMINAL_GAP]["id"]
        history = await repository.break_history(conn, gap_id)
        assert [(e["action"], e["status"]) for e in history] == [
            ("found", "open"),
            ("resolved", "resolved"),
        ]
        events = (await conn.execute(select(break_events.c.break_id))).scalars().all()
    assert len(events) == 5 + 2  # found x5, resolved x2: the idempotent re-run wrote nothing


async def test_a_written_off_clone_tap_is_still_evidence_of_the_clone(world: World) -> None:
    """Finance staff writing off the clone's held tap (it moves no money) does not hide the
    clone: the card check reads held taps, quarantined or written off, as the card's word."""
    day = past_day(2)
    await seed_faults(world, Clock(CALENDAR.day_start(day) + timedelta(hours=2)))
    async with world.ledger.engine.connect() as conn:
        held = await quarantine.list_quarantined(
            conn, reason=QuarantineReason.COUNTER_REUSED_DIFFERENT_AMOUNT
        )
    [clone_tap] = [row for row in held if row.card_no == CLONED]
    async with world.ledger.transaction() as conn:
        await quarantine.write_off(conn, clone_tap.id, actor="finance:fred", note="clone seen")
    await reconcile(world, day)
    found = {r["kind"]: r for r in await open_breaks(world)}
    assert found[BreakKind.CARD_CLONE_SUSPECTED]["counterpart"] == CLONED
    assert found[BreakKind.CARD_CLONE_SUSPECTED]["amount_fen"] == 300
