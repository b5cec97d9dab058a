"""The engine's decision part runs on a fake unit of work: no database, no ledger. And the one
column of settlement's table the engine names (instead of importing settlement) is settlement's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import cast

from sqlalchemy import Table

from clearing import books
from clearing.engine.decide import (
    CardInfo,
    Outcome,
    PendingLoadInfo,
    PostedTap,
    Purse,
    SplitInfo,
    Tap,
    TerminalInfo,
)
from clearing.engine.facts import decide_one, gather
from clearing.engine.reasons import QuarantineReason as R
from clearing.engine.repository import settlement_runs
from clearing.engine.uow import Release
from clearing.records import RecordStatus, TapKind
from clearing.settlement.models import SettlementRun
from ledger import CreateTransferResult, Transfer

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CARD = "1000000000000001"
SCHEMES = {"student": "student", "senior": "senior", "disabled": "disabled"}


class FakeRegistry:
    async def terminals(self, terminal_ids: Iterable[str]) -> dict[str, TerminalInfo]:
        known = {"B0001": TerminalInfo("BUS-CO", "bus", "L1")}
        return {t: known[t] for t in terminal_ids if t in known}

    async def cards(self, card_nos: Iterable[str]) -> dict[str, CardInfo]:
        return {n: CardInfo("student") for n in card_nos if n == CARD}


@dataclass
class FakeLoads:
    loads: dict[str, PendingLoadInfo] = field(default_factory=dict)

    async def pending(self, load_ids: Iterable[str]) -> dict[str, PendingLoadInfo]:
        return {i: self.loads[i] for i in load_ids if i in self.loads}

    async def mark_delivered(self, load_ids: Sequence[str]) -> None:
        raise AssertionError("deciding never writes")


class FakeClinic:
    async def splits(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SplitInfo]:
        return {}


class FakeSettledDays:
    async def last_settled_day(self) -> date | None:
        return None


@dataclass
class FakeBooks:
    available: dict[str, int]

    async def balances(self, names: Sequence[str]) -> dict[str, tuple[int, int]]:
        return {n: (i, self.available[n]) for i, n in enumerate(names) if n in self.available}

    async def ensure_accounts(self, names: Sequence[str]) -> dict[str, int]:
        raise AssertionError("deciding never opens accounts")

    async def create_transfers(self, transfers: Sequence[Transfer]) -> list[CreateTransferResult]:
        raise AssertionError("deciding never posts")


class FakeCleared:
    async def near(self, chunk: Sequence[Tap]) -> list[PostedTap]:
        return []

    async def by_terminal(self, keys: Iterable[tuple[str, int]]) -> list[PostedTap]:
        return []

    async def highest_counters(
        self, keys: Iterable[tuple[str, Purse]]
    ) -> dict[tuple[str, Purse], int]:
        return {}

    async def releases(self, tap_ids: Sequence[int]) -> dict[int, Release]:
        return {}


@dataclass
class FakeUnitOfWork:
    books: FakeBooks
    registry: FakeRegistry = field(default_factory=FakeRegistry)
    loads: FakeLoads = field(default_factory=FakeLoads)
    clinic: FakeClinic = field(default_factory=FakeClinic)
    settlement: FakeSettledDays = field(default_factory=FakeSettledDays)
    cleared: FakeCleared = field(default_factory=FakeCleared)


def _ride(tap_id: int, counter: int, before: int, fare: int = 100) -> Tap:
    return Tap(
        id=tap_id,
        terminal_id="B0001",
        kind=TapKind.PURCHASE,
        status=RecordStatus.COMPLETE,
        terminal_seq=tap_id,
        card_no=CARD,
        card_counter=counter,
        txn_type=6,
        amount_fen=fare,
        balance_before_fen=before,
        balance_after_fen=before - fare,
        occurred_at=NOW,
        tac="0A0B0C0D",
        card_type="student",
        full_fare_fen=200,
    )


def _decide(uow: FakeUnitOfWork, taps: list[Tap]) -> list[tuple[Outcome, R | None, int]]:
    def all_tacs_verify(chunk: Sequence[Tap]) -> dict[int, bool]:
        return {t.id: True for t in chunk}

    facts = asyncio.run(gather(uow, taps, NOW, all_tacs_verify))
    decided = [decide_one(t, facts, None, SCHEMES) for t in taps]
    return [(p.decision.outcome, p.decision.reason, p.decision.subsidy_fen) for p in decided]


def test_a_student_ride_posts_with_its_subsidy_while_the_card_can_pay() -> None:
    uow = FakeUnitOfWork(FakeBooks({books.card(CARD): 150}))
    assert _decide(uow, [_ride(1, 1, 500), _ride(2, 2, 400)]) == [
        (Outcome.POST, None, 100),
        # The first ride spent the shadow balance: 50 fen left, not enough for the second.
        (Outcome.QUARANTINE, R.CARD_BALANCE_INSUFFICIENT, 0),
    ]


def test_a_load_without_its_pending_load_is_held_back() -> None:
    uow = FakeUnitOfWork(FakeBooks({books.card_pending(CARD): 1000}))
    load = Tap(
        id=3,
        terminal_id="B0001",
        kind=TapKind.LOAD,
        status=RecordStatus.COMPLETE,
        terminal_seq=3,
        card_no=CARD,
        card_counter=7,
        txn_type=2,
        amount_fen=500,
        balance_before_fen=0,
        balance_after_fen=500,
        occurred_at=NOW,
        tac="0A0B0C0D",
        load_id="L-1",
    )
    assert _decide(uow, [load]) == [(Outcome.QUARANTINE, R.UNKNOWN_LOAD, 0)]
    uow.loads.loads["L-1"] = PendingLoadInfo(CARD, 500, "pending")
    assert _decide(uow, [load]) == [(Outcome.POST, None, 0)]


def test_the_settled_day_the_engine_reads_is_settlements_column() -> None:
    table = cast(Table, SettlementRun.__table__)
    assert settlement_runs.name == table.name
    for column in settlement_runs.columns:
        assert type(column.type) is type(table.c[column.name].type)
