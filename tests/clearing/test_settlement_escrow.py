"""The escrow account pays every payout, so nobody is ever paid into it: the demo's defaults keep
apart, settlement refuses such a participant (nothing moves), and the registry will not store one."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from clearing import books
from clearing.calendar import BusinessCalendar
from clearing.cli import app
from clearing.cli.city_demo import OPERATORS, demo_bank_account
from clearing.settings import ESCROW_ACCOUNT_DEFAULT, Settings, get_settings
from clearing.settlement.files import Debtor
from clearing.settlement.models import SettlementRun
from clearing.settlement.service import ParticipantPaysIntoEscrow, settle_day, write_files
from tests.clearing.apiharness import world as api_world
from tests.clearing.test_engine import ADULT, World, engine_pg_url, world, world_url
from tests.clearing.test_settlement_files import SETTLEMENT

__all__ = ["engine_pg_url", "world", "world_url"]

BUS_1_ACCOUNT = f"6222{50:012d}"  # tests.clearing.test_engine registers bus-1 with 50 bp


def test_the_demo_never_pays_into_its_escrow_account() -> None:
    accounts = [demo_bank_account(n) for n in range(1, len(OPERATORS) + 1)]
    accounts += [demo_bank_account(99), demo_bank_account(100)]  # the clinic, the insurer
    assert len(set(accounts)) == len(accounts)
    assert Settings().escrow_account == ESCROW_ACCOUNT_DEFAULT
    assert ESCROW_ACCOUNT_DEFAULT not in accounts


def test_a_bank_file_never_pays_from_the_account_it_pays_into(tmp_path: Path) -> None:
    [line] = SETTLEMENT.lines
    spaced = " ".join(line.bank_account[i : i + 4] for i in range(0, 19, 4))
    with pytest.raises(ParticipantPaysIntoEscrow, match="bus-1"):
        write_files(SETTLEMENT, tmp_path, Debtor("onecard", spaced, "Bank of the City"))
    assert list(tmp_path.iterdir()) == []


async def test_settlement_refuses_a_participant_paid_into_escrow(world: World) -> None:
    calendar = BusinessCalendar(ZoneInfo("Asia/Shanghai"), time(4, 0))
    tapped = datetime.now(UTC) - timedelta(days=2)
    day = calendar.business_day(tapped)
    await world.upload([world.ride(ADULT, 300, at=tapped)])
    await world.engine.clear_pending()
    async with world.ledger.transaction() as conn:
        with pytest.raises(ParticipantPaysIntoEscrow) as refused:
            await settle_day(
                conn,
                world.ledger,
                day,
                calendar=calendar,
                now=datetime.now(UTC),
                actor="t",
                escrow_account=BUS_1_ACCOUNT,
            )
    assert refused.value.code == "participant_account_is_escrow"
    assert "nothing was settled" in refused.value.detail
    assert await world.balance(books.payable("bus-1")) == 300
    async with world.ledger.transaction() as conn:
        runs = await conn.execute(select(func.count()).select_from(SettlementRun.__table__))
        assert runs.scalar() == 0


async def test_the_registry_refuses_a_participant_paid_into_escrow(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with api_world(sqlite_url, tmp_path) as w:
        body = {
            "code": "bus-9",
            "name": "Bus Nine",
            "kind": "bus_operator",
            "commission_bp": 10,
            "bank_account": "6222 0000 0000 0000 001",
            "bank_name": "Bank of the City",
        }
        created = await w.client.post("/v1/participants", json=body, headers=w.auth("admin"))
        assert created.status_code == 422, created.text
        assert created.json()["code"] == "participant_account_is_escrow"
        body["bank_account"] = "6222020200112233499"
        created = await w.client.post("/v1/participants", json=body, headers=w.auth("admin"))
        assert created.status_code == 201, created.text
        changed = await w.client.patch(
            "/v1/participants/bus-9",
            json={"bank_account": ESCROW_ACCOUNT_DEFAULT},
            headers=w.auth("admin"),
        )
        assert changed.status_code == 422, changed.text
        assert changed.json()["code"] == "participant_account_is_escrow"


def test_registry_add_refuses_the_escrow_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONECARD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ONECARD_ESCROW_ACCOUNT", "CN00 1111 2222 3333")
    monkeypatch.delenv("ONECARD_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
        added = runner.invoke(
            app,
            [
                "registry", "participant", "add", "bus-9", "--name", "Bus Nine",
                "--kind", "bus_operator", "--commission-bp", "10",
                "--bank-account", "CN0011112222 3333", "--bank-name", "Bank",
            ],
        )  # fmt: skip
    finally:
        get_settings.cache_clear()
    assert added.exit_code == 1, added.output
    assert "participant_account_is_escrow" in added.output
    assert "Traceback" not in added.output
