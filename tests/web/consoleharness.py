"""A small city for the finance console's tests, on a fresh database: the clearing tests' world
(two operators, three terminals, four cards), two forged taps in quarantine and one good ride
cleared today, yesterday settled (its files written), a reconciliation break, and staff
accounts: ann and bob (finance), adam (admin), pat (planner)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.auth.models import Role
from clearing.engine.synthetic import forged
from clearing.ingest.models import TapRecord
from clearing.registry import service as registry_service
from clearing.registry.models import TerminalKind
from clearing.registry.schemas import TerminalCreate
from clearing.settings import Settings
from clearing.settlement import service as settlement_service
from clearing.staff import service as staff_service
from reconciliation import repository as recon_repository
from tests.clearing.apiharness import public_hex
from tests.clearing.test_engine import ADULT, ADULT_2, build_world

STAFF_PASSWORD = "two keys, two people"
STAFF = {
    "ann": Role.FINANCE,
    "bob": Role.FINANCE,
    "adam": Role.ADMIN,
    "pat": Role.PLANNER,
}


@dataclass(frozen=True)
class Seeded:
    held: tuple[int, int]  # two quarantined tap records
    settled_day: str  # a settled business day, its files written
    break_id: int
    terminal_id: str  # a terminal that signs its requests with `terminal_key`
    terminal_key: Ed25519PrivateKey


async def seed_console(url: str, keys_dir: Path, settings: Settings) -> Seeded:
    world = await build_world(url, keys_dir)
    try:
        await world.upload(
            [
                forged(world.ride(ADULT)),
                forged(world.ride(ADULT_2)),
                world.ride(ADULT, 300, at=datetime.now(UTC) - timedelta(minutes=5)),
            ]
        )
        await world.engine.clear_pending()
        key = Ed25519PrivateKey.generate()
        terminal_id = secrets.token_hex(6).upper()
        calendar = settlement_service.calendar_of(settings)
        yesterday = calendar.last_closed_day(datetime.now(UTC))
        async with world.ledger.transaction() as conn:
            session = AsyncSession(bind=conn)
            for name, role in STAFF.items():
                await staff_service.add_staff(
                    session, settings, name, STAFF_PASSWORD, frozenset({role})
                )
            await registry_service.register_terminal(
                session,
                TerminalCreate(
                    terminal_id=terminal_id,
                    participant="bus-1",
                    kind=TerminalKind.BUS,
                    line="L1",
                    public_key=public_hex(key),
                ),
            )
            await session.flush()
            held = tuple(
                (
                    await conn.execute(
                        select(TapRecord.id)
                        .where(TapRecord.state == "quarantined")
                        .order_by(TapRecord.id)
                    )
                ).scalars()
            )
            settled = await settlement_service.settle_day(
                conn,
                world.ledger,
                yesterday,
                calendar=calendar,
                now=datetime.now(UTC),
                actor="finance:seed",
                escrow_account=settings.escrow_account,
            )
            now = datetime.now(UTC)
            break_id = await recon_repository.insert_break(
                conn,
                {
                    "kind": "terminal_total_mismatch",
                    "key": f"seed-{secrets.token_hex(4)}",
                    "scope": "day",
                    "business_day": yesterday,
                    "check_name": "terminals",
                    "amount_fen": 1234,
                    "counterpart": "0000010000A1",
                    "details": {},
                    "status": "open",
                    "assignee": None,
                    "first_seen_at": now - timedelta(days=4),
                    "last_seen_at": now,
                    "last_run_id": 0,
                },
            )
            await session.close()
        settlement_service.write_files(
            settled,
            settlement_service.settlement_dir(settings),
            settlement_service.debtor_of(settings),
        )
    finally:
        await world.ledger.close()
    return Seeded(held, yesterday.isoformat(), break_id, terminal_id, key)  # type: ignore[arg-type]
