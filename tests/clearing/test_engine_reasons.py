"""Every quarantine reason, and their declared order.

- One example per reason the other engine tests leave unasserted, end to end on a staged
  record (occurred in the future, counter reused, terminal serial reused, unknown load, load
  mismatch), on both backends.
- The whole declared order: for each adjacent pair of reasons, a record violating both gets
  the earlier one (pure `decide` for its ladder, the engine for the checks after it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from clearing import books
from clearing.books import LEDGER_CNY, TransferCode
from clearing.engine.decide import (
    FULL_FARE_FEN_MAX,
    CardInfo,
    Context,
    PendingLoadInfo,
    PostedTap,
    SplitInfo,
    Tap,
    TerminalInfo,
    decide,
)
from clearing.engine.reasons import QuarantineReason as R
from clearing.engine.synthetic import forged, load
from clearing.lists import service as lists_service
from ledger import Transfer, transfer_id
from tests.clearing.test_engine import (
    ADULT,
    ADULT_2,
    BUS_TERMINAL,
    World,
    engine_pg_url,
    world,
    world_url,
)
from tests.clearing.test_engine_poison import _drop_refusal, _refuse_cleared_row

__all__ = ["engine_pg_url", "world", "world_url"]

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

# -- the pure ladder: one planted violation per reason ---------------------------------------


def base(kind: str) -> tuple[Tap, Context]:
    """A record of `kind` that posts, and what is known about it."""
    amount = 5000 if kind == "load" else 200
    before = 10_000
    tap = Tap(
        id=7,
        terminal_id=BUS_TERMINAL,
        kind=kind,
        status="complete",
        terminal_seq=40,
        card_no=ADULT,
        card_counter=5,
        txn_type=2 if kind == "load" else 6,
        amount_fen=amount,
        balance_before_fen=before,
        balance_after_fen=before + amount if kind == "load" else before - amount,
        occurred_at=NOW - timedelta(minutes=10),
        tac="0A0B0C0D",
        card_type="senior",
        full_fare_fen=400 if kind == "purchase" else 0,
        insured_fen=300 if kind == "clinic" else 0,
        visit_id="V-1" if kind == "clinic" else None,
        load_id="L-1" if kind == "load" else None,
    )
    ctx = Context(
        now=NOW,
        terminal=TerminalInfo("op-1", "clinic" if kind == "clinic" else "bus", "L1"),
        card=CardInfo("senior", "urban"),
        tac_ok=True,
        split=SplitInfo(ADULT, "urban", 500, 300, 200),
        pending_load=PendingLoadInfo(ADULT, amount, "pending"),
        subsidy_schemes={"senior": "senior"},
    )
    return tap, ctx


def _other(tap: Tap, **changes: object) -> PostedTap:
    return replace(PostedTap.of(tap), tap_record_id=3, **changes)


Plant = Callable[[Tap, Context], tuple[Tap, Context]]

# Each reason of `decide`, the record kinds it can apply to, and how to plant it alone.
VIOLATIONS: dict[R, tuple[frozenset[str], Plant]] = {
    R.UNKNOWN_TERMINAL: (frozenset({"purchase", "clinic", "load"}), lambda t, c: (t, replace(c, terminal=None))),
    R.RECORD_INCONSISTENT: (frozenset({"purchase", "clinic", "load"}), lambda t, c: (replace(t, balance_after_fen=t.balance_after_fen + 1), c)),
    R.TERMINAL_NOT_ALLOWED: (frozenset({"purchase", "clinic"}), lambda t, c: (t, replace(c, terminal=TerminalInfo("op-1", "bus" if t.kind == "clinic" else "clinic")))),
    R.UNKNOWN_CARD: (frozenset({"purchase", "clinic", "load"}), lambda t, c: (t, replace(c, card=None))),
    R.BAD_TAC: (frozenset({"purchase", "clinic", "load"}), lambda t, c: (t, replace(c, tac_ok=False))),
    R.OCCURRED_IN_FUTURE: (frozenset({"purchase", "clinic", "load"}), lambda t, c: (replace(t, occurred_at=NOW + timedelta(hours=2)), c)),
    R.COUNTER_REUSED_DIFFERENT_AMOUNT: (frozenset({"purchase", "clinic", "load"}), lambda t, c: (t, replace(c, same_card_counter=_other(t, terminal_seq=39, amount_fen=t.amount_fen + 1)))),
    R.COUNTER_REUSED: (frozenset({"purchase", "clinic", "load"}), lambda t, c: (t, replace(c, same_card_counter=_other(t, terminal_seq=39)))),
    R.TERMINAL_SEQ_REUSED: (frozenset({"purchase", "clinic", "load"}), lambda t, c: (t, replace(c, same_terminal_seq=_other(t, card_no=ADULT_2)))),
    R.GREY_UNRESOLVED: (frozenset({"purchase", "clinic"}), lambda t, c: (replace(t, status="grey", tac=None), c)),
    R.FARE_OUT_OF_RANGE: (frozenset({"purchase"}), lambda t, c: (replace(t, full_fare_fen=FULL_FARE_FEN_MAX + 1), c)),
    R.CLINIC_SPLIT_UNKNOWN: (frozenset({"clinic"}), lambda t, c: (t, replace(c, split=None))),
    R.CLINIC_SPLIT_MISMATCH: (frozenset({"clinic"}), lambda t, c: (t, replace(c, split=SplitInfo(ADULT, "urban", 600, 400, 200)))),
    R.UNKNOWN_LOAD: (frozenset({"load"}), lambda t, c: (t, replace(c, pending_load=None))),
    R.LOAD_MISMATCH: (frozenset({"load"}), lambda t, c: (t, replace(c, pending_load=PendingLoadInfo(ADULT_2, t.amount_fen, "pending")))),
    R.LOAD_NOT_PENDING: (frozenset({"load"}), lambda t, c: (t, replace(c, pending_load=PendingLoadInfo(ADULT, t.amount_fen, "expired")))),
    R.BALANCE_CHAIN_BROKEN: (frozenset({"purchase", "clinic"}), lambda t, c: (t, replace(c, previous=_other(t, card_counter=t.card_counter - 1, terminal_seq=39, balance_after_fen=t.balance_before_fen + 1)))),
}  # fmt: skip

# Reasons found after `decide`, by the service and the ledger (tested end to end below).
AFTER_DECIDE = (R.CARD_BALANCE_INSUFFICIENT, R.LEDGER_REFUSED, R.RECORD_FAILED)

# Adjacent reasons no one record can violate together: each needs another kind of record.
EXCLUSIVE_BY_KIND = {
    (R.FARE_OUT_OF_RANGE, R.CLINIC_SPLIT_UNKNOWN),
    (R.CLINIC_SPLIT_MISMATCH, R.UNKNOWN_LOAD),
    (R.LOAD_NOT_PENDING, R.BALANCE_CHAIN_BROKEN),
}


def test_every_reason_is_either_planted_here_or_found_after_decide() -> None:
    assert list(VIOLATIONS) + list(AFTER_DECIDE) == list(R)  # in the declared order


@pytest.mark.parametrize("reason", list(VIOLATIONS))
def test_each_planted_violation_alone_gives_its_reason(reason: R) -> None:
    kinds, plant = VIOLATIONS[reason]
    for kind in sorted(kinds):
        assert decide(*plant(*base(kind))).reason is reason, kind


PAIRS = list(zip(list(VIOLATIONS), list(VIOLATIONS)[1:], strict=False))


@pytest.mark.parametrize(("earlier", "later"), PAIRS, ids=[f"{a}>{b}" for a, b in PAIRS])
def test_a_record_violating_two_adjacent_checks_gets_the_earlier(earlier: R, later: R) -> None:
    kinds = VIOLATIONS[earlier][0] & VIOLATIONS[later][0]
    if not kinds:
        assert (earlier, later) in EXCLUSIVE_BY_KIND
        return
    for kind in sorted(kinds):
        tap, ctx = VIOLATIONS[later][1](*base(kind))
        tap, ctx = VIOLATIONS[earlier][1](tap, ctx)
        assert decide(tap, ctx).reason is earlier, kind


def test_only_the_pairs_declared_exclusive_are_skipped() -> None:
    skipped = {(a, b) for a, b in PAIRS if not VIOLATIONS[a][0] & VIOLATIONS[b][0]}
    assert skipped == EXCLUSIVE_BY_KIND


# -- end to end: the reasons no other test asserted --------------------------------------------


async def test_a_tap_ahead_of_the_back_office_clock_is_occurred_in_future(world: World) -> None:
    ahead = world.ride(ADULT, 200, at=datetime.now(UTC) + timedelta(hours=3))
    await world.upload([ahead])
    await world.engine.clear_pending()
    assert await world.reasons() == [R.OCCURRED_IN_FUTURE]


async def test_a_future_tap_with_a_forged_tac_is_bad_tac_first(world: World) -> None:
    ahead = forged(world.ride(ADULT, 200, at=datetime.now(UTC) + timedelta(hours=3)))
    await world.upload([ahead])
    await world.engine.clear_pending()
    assert await world.reasons() == [R.BAD_TAC]


async def test_a_counter_reused_for_the_same_amount_is_counter_reused(world: World) -> None:
    first = world.ride(ADULT, 200)
    card = world.cards[ADULT]
    card.offline_counter -= 1  # a clone spends the same counter again, same fare
    card.balance_fen += 200
    again = world.ride(ADULT, 200)
    await world.upload([first, again])
    summary = await world.engine.clear_pending()
    assert (summary.posted, summary.quarantined) == (1, 1)
    assert await world.reasons() == [R.COUNTER_REUSED]


async def test_a_terminal_serial_reused_by_another_card_is_terminal_seq_reused(
    world: World,
) -> None:
    first = world.ride(ADULT, 200)
    world.seq[BUS_TERMINAL] -= 1
    second = world.ride(ADULT_2, 200)
    await world.upload([first])
    await world.engine.clear_pending()
    await world.upload([second])
    await world.engine.clear_pending()
    assert await world.reasons() == [R.TERMINAL_SEQ_REUSED]


async def _pending_load(world: World, load_id: str, card_no: str, amount_fen: int) -> None:
    """Money paid online for `card_no`, waiting on the action list as `load_id`."""
    async with world.ledger.transaction() as conn:
        session = AsyncSession(bind=conn)
        await books.ensure_accounts(
            world.ledger, [books.STRIPE_BALANCE, books.card_pending(card_no)], conn=conn
        )
        [paid] = await world.ledger.create_transfers(
            [
                Transfer(
                    id=transfer_id(f"topup:{load_id}"),
                    debit_account_id=books.account_of(books.STRIPE_BALANCE).id,
                    credit_account_id=books.account_of(books.card_pending(card_no)).id,
                    amount=amount_fen,
                    ledger=LEDGER_CNY,
                    code=TransferCode.PENDING_LOAD,
                )
            ],
            conn=conn,
        )
        assert paid.ok
        await lists_service.add_pending_load(
            session, load_id=load_id, card_no=card_no, amount_fen=amount_fen, source="stripe"
        )
        await session.flush()
        await session.close()


def _load_record(world: World, card_no: str, amount_fen: int, load_id: str) -> dict[str, object]:
    return load(
        world.signer,
        world.cards[card_no],
        terminal_id=BUS_TERMINAL,
        terminal_seq=world.next_seq(BUS_TERMINAL),
        amount_fen=amount_fen,
        load_id=load_id,
        at=datetime.now(UTC) - timedelta(minutes=5),
    )


async def test_a_load_naming_no_pending_load_is_unknown_load(world: World) -> None:
    await world.upload([_load_record(world, ADULT, 5_000, "L-nobody")])
    await world.engine.clear_pending()
    assert await world.reasons() == [R.UNKNOWN_LOAD]
    assert await world.balance(books.card(ADULT)) == 10_000


async def test_a_load_for_another_card_or_amount_is_load_mismatch(world: World) -> None:
    await _pending_load(world, "L-1", ADULT, 5_000)
    other_card = _load_record(world, ADULT_2, 5_000, "L-1")
    other_amount = _load_record(world, ADULT, 3_000, "L-1")
    await world.upload([other_card, other_amount])
    await world.engine.clear_pending()
    assert await world.reasons() == [R.LOAD_MISMATCH, R.LOAD_MISMATCH]
    assert await world.balance(books.card_pending(ADULT)) == 5_000  # still waiting for its card


# -- end to end: the order after decide ----------------------------------------------------


async def test_a_broken_chain_beyond_the_shadow_balance_is_balance_chain_broken(
    world: World,
) -> None:
    card = world.cards[ADULT]
    card.balance_fen = 30_000  # the card holds more than the back office knows of
    late = world.ride(ADULT, 15_000)  # beyond the shadow balance of 10,000
    card.balance_fen -= 1_000  # and money vanished before the next counter
    first = world.ride(ADULT, 100)
    await world.upload([first])
    await world.engine.clear_pending()
    await world.upload([late])
    await world.engine.clear_pending()
    assert await world.reasons() == [R.BALANCE_CHAIN_BROKEN]


async def _squat(world: World, card_no: str, counter: int) -> None:
    """Someone already used this tap's transfer id (a bug elsewhere): the ledger refuses it."""
    async with world.ledger.transaction() as conn:
        [squatted] = await world.ledger.create_transfers(
            [
                Transfer(
                    id=transfer_id(f"tap:{card_no}:offline:{counter}"),
                    debit_account_id=books.account_of(books.card(card_no)).id,
                    credit_account_id=books.account_of(books.BANK_CASH).id,
                    amount=1,
                    ledger=LEDGER_CNY,
                    code=TransferCode.CARD_REFUND,
                )
            ],
            conn=conn,
        )
    assert squatted.ok


async def test_a_ride_beyond_the_shadow_balance_is_never_sent_to_the_ledger(world: World) -> None:
    card = world.cards[ADULT]
    card.balance_fen = 30_000
    ride = world.ride(ADULT, 12_000)
    await _squat(world, ADULT, ride["card_counter"])
    await world.upload([ride])
    await world.engine.clear_pending()
    assert await world.reasons() == [R.CARD_BALANCE_INSUFFICIENT]


async def test_a_ledger_refusal_comes_before_a_row_the_database_would_refuse(
    world: World,
) -> None:
    ride = world.ride(ADULT, 300)
    await _squat(world, ADULT, ride["card_counter"])
    await _refuse_cleared_row(world, ADULT, ride["card_counter"], "23514")
    try:
        await world.upload([ride, world.ride(ADULT_2, 100)])
        summary = await world.engine.clear_pending()
    finally:
        await _drop_refusal(world)
    assert (summary.posted, summary.quarantined) == (1, 1)
    assert await world.reasons() == [R.LEDGER_REFUSED]


async def test_a_ledger_refusal_beside_good_records_keeps_only_what_was_posted(
    world: World,
) -> None:
    """The chunk's rows are written before its ledger write; a refusal sends them back to a
    savepoint and writes them again: the refused record is quarantined once, the others are
    posted once, and the run counts each record once."""
    from sqlalchemy import text

    ride = world.ride(ADULT, 300)
    await _squat(world, ADULT, ride["card_counter"])
    others = [world.ride(ADULT_2, 100), world.ride(ADULT_2, 200)]
    await world.upload([others[0], ride, others[1]])
    summary = await world.engine.clear_pending()
    assert (summary.posted, summary.quarantined, summary.records_seen) == (2, 1, 3)
    assert await world.reasons() == [R.LEDGER_REFUSED]
    assert await world.balance(books.card(ADULT_2)) == 10_000 - 300
    assert await world.balance(books.card(ADULT)) == 10_000 - 1  # only the squatter's fen
    async with world.ledger.engine.connect() as conn:
        cleared = await conn.scalar(text("SELECT count(*) FROM cleared_taps"))
        run = (
            await conn.execute(
                text("SELECT records_seen, posted, quarantined FROM clearing_runs ORDER BY id")
            )
        ).all()[-1]
    assert cleared == 2
    assert tuple(run) == (3, 2, 1)
