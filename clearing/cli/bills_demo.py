"""The city demo's bills: water and power bills paid by card at the companies' counters,
against the real biller service (started here as its own process, stopped at the end).

For each bill: the counter looks it up at the biller, checks the card and the bill (nothing
charged on a refusal), the counter terminal debits the card (a purchase journaled with the
bill), uploads its journal, the bill is marked paid with a receipt (the linked resident's, if any), and
the biller is told (Celery, eager). Clearing then moves card → payable:<biller> once, and the
day's settlement pays the biller less commission like any operator.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from cardio.inproc import InProcessTransport
from cardio.keystore import KeyStore
from cardio.softcard import SoftCard
from clearing.auth.models import Role
from clearing.auth.service import Principal
from clearing.billing import counter, service, tasks
from clearing.billing.models import BillConfirmation, ConfirmationState
from clearing.registry import service as registry_service
from clearing.registry.models import ParticipantKind, TerminalKind
from clearing.registry.schemas import ParticipantCreate, TerminalCreate
from clearing.settings import ESCROW_ACCOUNT_DEFAULT, get_settings
from ledger.writer import Ledger
from terminals.client import ClearingClient
from terminals.counter import BillCounter
from terminals.journal import Journal
from terminals.lists import ListStore
from terminals.sam import Psam, SoftwareSam, provision_sam_keys
from terminals.signing import new_credential
from terminals.uploader import Uploader

BILLERS = (
    ("city-water", "City Water Co.", "water", 40, "W"),
    ("city-power", "City Power Co.", "power", 60, "P"),
    ("city-heat", "City Heating Co.", "heating", 50, "H"),
)
# One counter terminal per biller: a tap clears to its terminal's participant's payable.
COUNTERS = {"city-water": "000003000001", "city-power": "000003000002"}
BILLS_DEFAULT = 12
BILLER_READY_S_MAX = 20.0
ADMIN = Principal(0, Role.ADMIN, "demo", None)
T = TypeVar("T")


@dataclass
class BillsReport:
    paid: int = 0
    amount_fen: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    acknowledged: int = 0


class BillerProcess:
    """The biller service on a free port, its storage under `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        args = [sys.executable, "-m", "clearing.billing.simulator", "--port", "0"]
        args += ["--data", str(data_dir)] + [f"--biller={c}={k}" for c, _, k, _, _ in BILLERS]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        self.url = self._wait_ready()

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + BILLER_READY_S_MAX
        ready = self.data_dir / "ready.json"
        while time.monotonic() < deadline and self.process.poll() is None:
            if ready.exists():
                url = f"http://127.0.0.1:{json.loads(ready.read_text())['port']}"
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        return url
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        self.close()
        raise RuntimeError("the biller service did not start")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


async def _in_tx(url: str, work: Callable[[AsyncSession, Ledger], Awaitable[T]]) -> T:
    async with await Ledger.open(url) as ledger, ledger.transaction() as conn:
        session = AsyncSession(bind=conn, expire_on_commit=False)
        result = await work(session, ledger)
        await session.flush()
        await session.close()
        return result


async def _register(session: AsyncSession, _: Ledger, public_keys: dict[str, str]) -> None:
    for n, (code, name, _kind, bp, _prefix) in enumerate(BILLERS):
        await registry_service.create_participant(
            session,
            ParticipantCreate(
                code=code,
                name=name,
                kind=ParticipantKind.UTILITY,
                commission_bp=bp,
                bank_account=f"62220000000{300 + n:05d}",
                bank_name="Bank of the City",
            ),
            escrow_account=ESCROW_ACCOUNT_DEFAULT,
        )
    for code, terminal_id in COUNTERS.items():
        await registry_service.register_terminal(
            session,
            TerminalCreate(
                terminal_id=terminal_id,
                participant=code,
                kind=TerminalKind.UTILITY,
                line=None,
                public_key=public_keys[code],
            ),
        )


@dataclass
class _Counter:
    terminal_id: str
    till: BillCounter
    uploader: Uploader
    journal: Journal


def _counter(
    store: KeyStore,
    terminal_id: str,
    home: Path,
    clearing_url: str,
    list_public_key: str,
    clock: Callable[[], datetime],
) -> tuple[_Counter, str]:
    home.mkdir(parents=True, exist_ok=True)
    credential = new_credential(terminal_id)
    journal = Journal(home / "journal.db", terminal_id)
    keys = provision_sam_keys(store, bytes.fromhex(terminal_id), home / "sam-keys.json")
    lists = ListStore(home / "lists.json", list_public_key)
    till = BillCounter(
        journal,
        Psam(SoftwareSam(keys, home / "sam-serial")),
        lists,
        purchase_key_index=keys.purchase.index,
        clock=clock,
    )
    uploader = Uploader(
        journal, lists, partial(ClearingClient, clearing_url, credential), interval_s=60
    )
    return _Counter(terminal_id, till, uploader, journal), credential.public_key_hex


def pay_bills_at_the_counter(
    store: KeyStore,
    cards: list[SoftCard],
    *,
    clearing_url: str,
    list_public_key: str,
    home: Path,
    clock: Callable[[], datetime],
    bills: int = BILLS_DEFAULT,
) -> BillsReport:
    """Pay `bills` water and power bills by card at the water and power companies' counters."""
    home.mkdir(parents=True, exist_ok=True)
    biller = BillerProcess(home / "biller")
    before = os.environ.get("ONECARD_BILLER_URL")
    os.environ["ONECARD_BILLER_URL"] = biller.url  # the confirmation tasks read the settings
    get_settings.cache_clear()
    url = get_settings().resolved_database_url()
    counters: dict[str, _Counter] = {}
    try:
        keys: dict[str, str] = {}
        for code, terminal_id in COUNTERS.items():
            counters[code], keys[code] = _counter(
                store, terminal_id, home / code, clearing_url, list_public_key, clock
            )
        asyncio.run(_in_tx(url, partial(_register, public_keys=keys)))
        report = BillsReport()
        for n in range(bills):
            code, _name, _kind, _bp, prefix = BILLERS[n % 2]  # water and power
            account = f"{prefix}{1001 + n // 2}"
            _pay_one(url, counters[code], cards[n], code, account, report)
        return report
    finally:
        for each in counters.values():
            each.journal.close()
        biller.close()
        if before is None:
            os.environ.pop("ONECARD_BILLER_URL", None)
        else:
            os.environ["ONECARD_BILLER_URL"] = before
        get_settings.cache_clear()


def _pay_one(
    url: str,
    at: _Counter,
    card: SoftCard,
    biller_code: str,
    account_no: str,
    report: BillsReport,
) -> None:
    async def start(session: AsyncSession, _: Ledger) -> Any:
        bill = await service.lookup_bill(session, biller_code, account_no)
        return await counter.start_counter_payment(
            session,
            ADMIN,
            biller_code=biller_code,
            account_no=account_no,
            bill_id=bill.bill_id,
            amount_fen=bill.amount_due_fen,
            card_no=card.card_no,
            request_id=f"demo-{biller_code}-{account_no}",
        )

    payment = asyncio.run(_in_tx(url, start))
    result = at.till.pay(InProcessTransport(card), payment.bill_id, payment.amount_fen)
    if not result.paid or result.record is None:
        report.refused[result.outcome.value] = report.refused.get(result.outcome.value, 0) + 1
        return
    at.uploader.sync_once()
    seq = result.record.terminal_seq

    async def tapped(session: AsyncSession, ledger: Ledger) -> Any:
        return await counter.counter_tap_done(
            session,
            ADMIN,
            biller_code=biller_code,
            payment_id=payment.id,
            terminal_id=at.terminal_id,
            terminal_seq=seq,
            ledger=ledger,
        )

    receipt = asyncio.run(_in_tx(url, tapped))
    tasks.dispatch_confirmations([payment.id])  # after the commit; eager: the biller is told now

    async def acknowledged(session: AsyncSession, _: Ledger) -> bool:
        row = await session.get(BillConfirmation, payment.id)
        return row is not None and row.state is ConfirmationState.ACKNOWLEDGED

    report.paid += 1
    report.amount_fen += receipt.amount_fen
    report.acknowledged += int(asyncio.run(_in_tx(url, acknowledged)))
