"""The clearing engine end to end on the real database and ledger: staged uploads in, ledger
transfers, dispositions and quarantine out. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from cardio.keystore import create_key_store
from clearing import books, db
from clearing.engine.models import ClearedTap, TapDisposition
from clearing.engine.reasons import QuarantineReason as R
from clearing.engine.service import ClearingEngine, EngineConfig, load_verifier
from clearing.engine.synthetic import SyntheticCard, TapSigner, forged, purchase
from clearing.ingest import service as ingest_service
from clearing.ingest.models import TapRecord
from clearing.ingest.schemas import BatchUpload
from clearing.registry import service as registry_service
from clearing.registry.schemas import CardIssue, ParticipantCreate, TerminalCreate
from clearing.settings import ESCROW_ACCOUNT_DEFAULT
from ledger import account_id
from ledger.writer import Ledger

BUS_TERMINAL = "0000010000A1"
BUS_TERMINAL_2 = "0000010000A2"
CLINIC_TERMINAL = "0000020000C1"
PUBLIC_KEYS = ("11" * 32, "12" * 32, "13" * 32)  # one key per terminal


@dataclass
class World:
    url: str
    ledger: Ledger
    engine: ClearingEngine
    signer: TapSigner
    cards: dict[str, SyntheticCard] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)
    batch_no: int = 0

    def next_seq(self, terminal_id: str) -> int:
        self.seq[terminal_id] = self.seq.get(terminal_id, 0) + 1
        return self.seq[terminal_id]

    def ride(self, card_no: str, amount_fen: int = 200, **kwargs: Any) -> dict[str, Any]:
        terminal = kwargs.pop("terminal_id", BUS_TERMINAL)
        return purchase(
            self.signer,
            self.cards[card_no],
            terminal_id=terminal,
            terminal_seq=self.next_seq(terminal),
            amount_fen=amount_fen,
            at=kwargs.pop("at", datetime.now(UTC) - timedelta(hours=1)),
            route_id=kwargs.pop("route_id", "L1"),
            **kwargs,
        )

    async def upload(
        self, records: list[dict[str, Any]], terminal_id: str = BUS_TERMINAL, batch_id: str = ""
    ) -> None:
        self.batch_no += 1
        body = json.dumps(
            {"batch_id": batch_id or f"b-{self.batch_no}", "records": records}
        ).encode()
        async with self.ledger.transaction() as conn:
            session = AsyncSession(bind=conn)
            await ingest_service.store_batch(
                session,
                terminal_id=terminal_id,
                body=body,
                upload=BatchUpload.model_validate_json(body),
            )
            await session.flush()
            await session.close()

    async def balance(self, name: str) -> int:
        states = await self.ledger.lookup_accounts([account_id(name)])
        if not states:
            return 0
        spec = books.account_spec(name)
        balance = states[0].balance
        return balance.debit_balance if spec.kind.debit_normal else balance.credit_balance

    async def states(self) -> dict[str, int]:
        async with self.ledger.engine.connect() as conn:
            rows = await conn.execute(
                select(TapRecord.state, func.count()).group_by(TapRecord.state)
            )
            return {str(r[0]): r[1] for r in rows}

    async def reasons(self) -> list[str]:
        async with self.ledger.engine.connect() as conn:
            rows = await conn.execute(
                select(TapRecord.quarantine_reason)
                .where(TapRecord.state == "quarantined")
                .order_by(TapRecord.id)
            )
            return [r[0] for r in rows]


async def build_world(url: str, tmp_path: Path, *, chunk_records: int = 4000) -> World:
    store = create_key_store(tmp_path / "keys.json")
    ledger = await Ledger.open(url)
    engine = ClearingEngine(
        ledger, load_verifier(tmp_path / "keys.json"), EngineConfig(chunk_records=chunk_records)
    )
    world = World(url, ledger, engine, TapSigner(store))
    async with ledger.transaction() as conn:
        session = AsyncSession(bind=conn)
        await books.open_books(ledger, conn=conn)
        for code, kind, bp in (("bus-1", "bus_operator", 50), ("clinic-1", "clinic", 30)):
            await registry_service.create_participant(
                session,
                ParticipantCreate(
                    code=code,
                    name=f"{code} Co.",
                    kind=kind,
                    commission_bp=bp,
                    bank_account=f"6222{bp:012d}",
                    bank_name="Bank of the City",
                ),
                escrow_account=ESCROW_ACCOUNT_DEFAULT,
            )
        for public_key, (terminal_id, owner, kind) in zip(
            PUBLIC_KEYS,
            (
                (BUS_TERMINAL, "bus-1", "bus"),
                (BUS_TERMINAL_2, "bus-1", "bus"),
                (CLINIC_TERMINAL, "clinic-1", "clinic"),
            ),
            strict=True,
        ):
            await registry_service.register_terminal(
                session,
                TerminalCreate(
                    terminal_id=terminal_id,
                    participant=owner,
                    kind=kind,
                    line="L1",
                    public_key=public_key,
                ),
            )
        for n, card_type in enumerate(("adult", "adult", "senior", "student")):
            card_no = f"31000000000000{n:02d}"
            await registry_service.issue_card(
                session,
                ledger,
                CardIssue(
                    card_no=card_no,
                    card_type=card_type,
                    holder_id=f"resident-{n}",
                    holder_name=f"Resident {n}",
                    scheme="urban" if n == 0 else None,
                    deposit_fen=2000,
                    first_load_fen=10_000,
                ),
                "test",
            )
            world.cards[card_no] = SyntheticCard(card_no, 10_000, card_type)
        await session.flush()
        await session.close()
    return world


@pytest.fixture(scope="session")
def engine_pg_url(pg_url: str) -> str:
    """A PostgreSQL database of the clearing-engine tests alone, next to the shared test
    database: these tests commit (crashes, restarts, settlement runs) and empty their tables
    between tests, which must never touch what other tests keep in the shared one."""
    parsed = make_url(pg_url)
    name = f"{parsed.database}_engine"

    async def recreate() -> None:
        admin = create_async_engine(
            parsed.set(database="postgres").render_as_string(hide_password=False),
            isolation_level="AUTOCOMMIT",
        )
        try:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            await admin.dispose()

    asyncio.run(recreate())
    url = parsed.set(database=name).render_as_string(hide_password=False)
    db.upgrade(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world_url(request: pytest.FixtureRequest) -> str:
    """A migrated database of each backend (sync: the migrations run their own event loop)."""
    name = "sqlite_url" if request.param == "sqlite" else "engine_pg_url"
    return request.getfixturevalue(name)


@pytest.fixture
async def world(world_url: str, tmp_path: Path) -> AsyncIterator[World]:
    if world_url.startswith("postgresql"):
        await _reset_pg(world_url)
    w = await build_world(world_url, tmp_path)
    try:
        yield w
    finally:
        await w.ledger.close()


async def _reset_pg(url: str) -> None:
    """Tests about commits and crashes cannot roll back: start from empty tables instead."""
    ledger = await Ledger.open(url)
    try:
        async with ledger.engine.begin() as conn:
            tables = (
                await conn.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                        " AND tablename NOT IN ('alembic_version', 'list_heads', 'ledger_clock')"
                    )
                )
            ).scalars()
            names = ", ".join(f'"{t}"' for t in tables)
            await conn.execute(text("SET session_replication_role = replica"))
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            await conn.execute(text("UPDATE list_heads SET version = 0"))
            await conn.execute(text("SET session_replication_role = origin"))
    finally:
        await ledger.close()


ADULT, ADULT_2, SENIOR, STUDENT = (f"31000000000000{n:02d}" for n in range(4))


async def test_valid_taps_post_card_to_operator_exactly_once(world: World) -> None:
    records = [world.ride(ADULT), world.ride(ADULT, 300), world.ride(ADULT_2, 200)]
    await world.upload(records)
    await world.upload(records)  # the same records again in another batch
    summary = await world.engine.clear_pending()
    assert (summary.posted, summary.duplicates, summary.quarantined) == (3, 3, 0)
    assert await world.balance(books.card(ADULT)) == 10_000 - 500
    assert await world.balance(books.card(ADULT_2)) == 10_000 - 200
    assert await world.balance(books.payable("bus-1")) == 700
    again = await world.engine.clear_pending()
    assert again.records_seen == 0
    assert await world.balance(books.payable("bus-1")) == 700
    assert await world.states() == {"cleared": 6}


async def test_forged_and_altered_records_are_quarantined_as_bad_tac(world: World) -> None:
    good = world.ride(ADULT)
    await world.upload([forged(world.ride(ADULT)), forged(good, amount_fen=1), good])
    summary = await world.engine.clear_pending()
    assert summary.posted == 1
    assert await world.reasons() == [R.BAD_TAC, R.BAD_TAC]
    assert await world.balance(books.payable("bus-1")) == 200


async def test_counter_reused_with_another_amount_is_quarantined(world: World) -> None:
    first = world.ride(ADULT, 200)
    world.cards[ADULT].offline_counter -= 1  # a clone replays the same counter
    world.cards[ADULT].balance_fen += 200
    clone = world.ride(ADULT, 300)
    await world.upload([first])
    await world.engine.clear_pending()
    await world.upload([clone])
    await world.engine.clear_pending()
    assert await world.reasons() == [R.COUNTER_REUSED_DIFFERENT_AMOUNT]
    assert await world.balance(books.card(ADULT)) == 10_000 - 200


async def test_out_of_order_batches_post_everything_once(world: World) -> None:
    rides = [world.ride(ADULT, 100 + n) for n in range(6)]
    await world.upload(rides[3:], batch_id="later")
    await world.engine.clear_pending()
    await world.upload(rides[:3], batch_id="earlier")
    await world.engine.clear_pending()
    assert await world.states() == {"cleared": 6}
    assert await world.balance(books.card(ADULT)) == 10_000 - sum(100 + n for n in range(6))


async def test_unknown_card_and_counter_chain_break_are_quarantined(world: World) -> None:
    stranger = SyntheticCard("3199999999999999", 5_000)
    world.cards[stranger.card_no] = stranger
    first = world.ride(ADULT, 200)
    world.cards[ADULT].balance_fen -= 500  # money vanished between two counters: a clone
    second = world.ride(ADULT, 200)
    await world.upload([world.ride(stranger.card_no), first, second])
    await world.engine.clear_pending()
    assert sorted(await world.reasons()) == [R.BALANCE_CHAIN_BROKEN, R.UNKNOWN_CARD]


async def test_concession_rides_claim_the_subsidy(world: World) -> None:
    await world.upload(
        [world.ride(SENIOR, 0, full_fare_fen=200), world.ride(STUDENT, 100, full_fare_fen=200)]
    )
    await world.engine.clear_pending()
    assert await world.balance(books.subsidy("senior")) == 200
    assert await world.balance(books.subsidy("student")) == 100
    assert await world.balance(books.payable("bus-1")) == 400  # made whole: 2 full fares
    assert await world.balance(books.card(SENIOR)) == 10_000


async def test_grey_tap_is_resolved_by_the_cards_later_counter(world: World) -> None:
    torn = world.ride(ADULT, 200, grey=True)  # the card did debit, the answer was lost
    await world.upload([torn])
    await world.engine.clear_pending()
    assert await world.reasons() == [R.GREY_UNRESOLVED]
    await world.upload([world.ride(ADULT, 300)])
    summary = await world.engine.clear_pending()
    assert summary.resolved == 1
    assert await world.states() == {"cleared": 2}
    assert await world.balance(books.card(ADULT)) == 10_000 - 500


async def test_grey_tap_that_never_debited_is_void(world: World) -> None:
    card = world.cards[ADULT]
    torn = world.ride(ADULT, 200, grey=True)
    card.offline_counter -= 1  # 94 06: the debit never happened; the counter was not used
    card.balance_fen += 200
    retry = world.ride(ADULT, 200)
    await world.upload([torn, retry])
    await world.engine.clear_pending()
    async with world.ledger.engine.connect() as conn:
        kinds = (await conn.execute(select(TapDisposition.disposition))).scalars().all()
    assert kinds == ["grey_void"]
    assert await world.balance(books.card(ADULT)) == 10_000 - 200


async def test_a_small_chunk_size_gives_the_same_books(world: World) -> None:
    world.engine.config = EngineConfig(chunk_records=2)
    rides = [world.ride(card, 150) for card in (ADULT, ADULT_2, ADULT, ADULT_2, ADULT)]
    await world.upload(rides + rides[:2])
    summary = await world.engine.clear_pending()
    assert (summary.posted, summary.duplicates) == (5, 2)
    async with world.ledger.engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(ClearedTap))).scalar()
    assert count == 5
    assert await world.balance(books.payable("bus-1")) == 750


async def test_a_delivered_pending_load_moves_to_the_card_once(world: World) -> None:
    from clearing.engine.synthetic import load
    from clearing.lists import service as lists_service
    from ledger import Transfer, transfer_id

    async with world.ledger.transaction() as conn:
        session = AsyncSession(bind=conn)
        await books.ensure_accounts(
            world.ledger, [books.STRIPE_BALANCE, books.card_pending(ADULT)], conn=conn
        )
        [paid] = await world.ledger.create_transfers(
            [
                Transfer(
                    id=transfer_id("topup:L-1"),
                    debit_account_id=books.account_of(books.STRIPE_BALANCE).id,
                    credit_account_id=books.account_of(books.card_pending(ADULT)).id,
                    amount=5_000,
                    ledger=books.LEDGER_CNY,
                    code=books.TransferCode.PENDING_LOAD,
                )
            ],
            conn=conn,
        )
        assert paid.ok
        await lists_service.add_pending_load(
            session, load_id="L-1", card_no=ADULT, amount_fen=5_000, source="stripe"
        )
        await session.flush()
        await session.close()
    card = world.cards[ADULT]
    delivered = load(
        world.signer,
        card,
        terminal_id=BUS_TERMINAL,
        terminal_seq=world.next_seq(BUS_TERMINAL),
        amount_fen=5_000,
        load_id="L-1",
        at=datetime.now(UTC) - timedelta(minutes=5),
    )
    ride = world.ride(ADULT, 14_000)  # only possible with the load on the card
    await world.upload([ride, delivered])  # the ride arrives first in the batch
    await world.upload([delivered])  # and the load record again
    summary = await world.engine.clear_pending()
    assert (summary.posted, summary.duplicates, summary.quarantined) == (2, 1, 0)
    assert await world.balance(books.card_pending(ADULT)) == 0
    assert await world.balance(books.card(ADULT)) == 10_000 + 5_000 - 14_000
    again = load(
        world.signer,
        card,
        terminal_id=BUS_TERMINAL,
        terminal_seq=world.next_seq(BUS_TERMINAL),
        amount_fen=5_000,
        load_id="L-1",
        at=datetime.now(UTC),
    )
    await world.upload([again])  # the same pending load claimed by another card counter
    await world.engine.clear_pending()
    assert await world.reasons() == [R.LOAD_NOT_PENDING]


async def test_a_tap_beyond_the_shadow_balance_waits_for_the_load(world: World) -> None:
    card = world.cards[ADULT]
    card.balance_fen += 5_000  # a load the back office has not cleared yet
    ride = world.ride(ADULT, 12_000)
    await world.upload([ride])
    summary = await world.engine.clear_pending()
    assert summary.quarantined == 1
    assert await world.reasons() == [R.CARD_BALANCE_INSUFFICIENT]
    assert await world.balance(books.card(ADULT)) == 10_000


@pytest.mark.postgres
async def test_a_chunk_larger_than_one_ledger_batch_keeps_pairs_together(world: World) -> None:
    if not world.url.startswith("postgresql"):
        pytest.skip("one backend is enough for the batch split")
    world.engine.config = EngineConfig(chunk_records=5000)
    rides = [world.ride(STUDENT, 1, full_fare_fen=2) for _ in range(4200)]  # 8,400 transfers
    await world.upload(rides)
    summary = await world.engine.clear_pending()
    assert (summary.posted, summary.quarantined) == (4200, 0)
    assert await world.balance(books.card(STUDENT)) == 10_000 - 4200
    assert await world.balance(books.subsidy("student")) == 4200
    assert await world.balance(books.payable("bus-1")) == 8400


@pytest.mark.postgres
async def test_a_read_ahead_chunk_that_went_stale_is_read_again(world: World) -> None:
    """The next chunk is read (and its TACs checked) while the current one is written; if the
    records it read are no longer exactly the next ones when its turn comes, it is not used."""
    if not world.url.startswith("postgresql"):
        pytest.skip("the read-ahead runs on PostgreSQL only")
    rides = [world.ride(card, 150) for card in (ADULT, ADULT_2, ADULT)]
    await world.upload(rides)
    ahead = await world.engine._prefetch(0, 2)
    read_ahead = [t.id for t in ahead.taps]
    assert len(read_ahead) == 2 and all(ahead.tac_ok.values())
    first = await world.engine.clear_pending(records_max=1)  # clears the first one read ahead
    assert first.posted == 1
    async with world.ledger.transaction() as conn:
        chunk = await world.engine._next_chunk(conn, 2, ahead)
    assert [t.id for t in chunk] == [read_ahead[1], read_ahead[1] + 1]
    assert ahead.taps == []  # marked stale: its cards and TAC results are not used either
    summary = await world.engine.clear_pending()
    assert (summary.posted, summary.duplicates, summary.quarantined) == (2, 0, 0)
    assert await world.balance(books.payable("bus-1")) == 450
