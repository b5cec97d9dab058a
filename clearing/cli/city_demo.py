"""The city demo on the embedded default (SQLite, eager Celery, in-process software cards).

Issues a few thousand cards, serves the clearing API on a local port, runs a fleet of buses
and a clinic through a day of taps (buses offline for hours), plants forged and duplicated
records, then clears (Celery task, eager), settles (Celery task, eager) and prints a summary
per operator, the quarantine and where the settlement files are. Everything lives in
`<data_dir>/demo`, made fresh on every run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import insert, text

from cardio.keystore import KeyStore, create_key_store
from cardio.records import CardType as CardioCardType
from cardio.softcard import SoftCard
from clearing import books, db
from clearing.books import LEDGER_CNY, TransferCode
from clearing.cli.mobile_demo import residents_top_up, stripe_environment
from clearing.registry.models import Card, Participant, Terminal
from clearing.settings import get_settings
from clearing.settlement.service import calendar_of
from ledger import Transfer, transfer_id
from ledger.types import BATCH_MAX
from ledger.writer import Ledger

ZONE = ZoneInfo("Asia/Shanghai")
OPERATORS = (("bus-north", "North Bus Co.", 50), ("bus-south", "South Bus Co.", 60))
OPERATORS += (("bus-east", "East Bus Co.", 80),)
CLINIC = ("clinic-central", "Central Community Clinic", 30)
CLINIC_TERMINAL = "000002000001"
SCHEMES = ("urban", "employee", "resident")
CARD_TYPES = (
    [CardioCardType.ADULT] * 14
    + [CardioCardType.STUDENT] * 3
    + [CardioCardType.SENIOR] * 2
    + [CardioCardType.DISABLED]
)
CARDS_DEFAULT = 3000
BUSES_DEFAULT = 12
VISITS_DEFAULT = 40
DEPOSIT_FEN = 2000
SERVER_START_S_MAX = 30.0
SYNC_EVERY_TAPS = 1000
# Software cards and SAMs cost ~15 ms a tap: a quarter of the cards ride in the demo's day.
RIDING_SHARE = 0.25


@dataclass
class DemoReport:
    cards: int = 0
    taps: int = 0
    paid: int = 0
    offline_periods: int = 0
    visits: int = 0
    visits_paid: int = 0
    visit_outcomes: dict[str, int] = field(default_factory=dict)
    planted_forged: int = 0
    planted_duplicates: int = 0
    clearing: dict[str, Any] = field(default_factory=dict)
    bills: Any = None  # clearing.cli.bills_demo.BillsReport
    settlement: dict[str, Any] = field(default_factory=dict)
    reconciliation: dict[str, Any] = field(default_factory=dict)
    topups: Any = None
    seconds: float = 0.0


def _public_hex(private_key: Any) -> str:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _prepare_environment(root: Path) -> None:
    """The demo's own embedded world: its database, key store and eager Celery."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    os.environ["ONECARD_DATA_DIR"] = str(root)
    os.environ["ONECARD_DATABASE_URL"] = db.sqlite_file_url(root / "onecard.db")
    os.environ["ONECARD_KEY_STORE"] = str(root / "keys.json")
    os.environ.pop("ONECARD_CELERY_BROKER_URL", None)
    os.environ.pop("ONECARD_SETTLEMENT_DIR", None)
    get_settings.cache_clear()
    stripe_environment()


async def _issue_cards(
    url: str, store: KeyStore, count: int, rng: random.Random
) -> tuple[list[SoftCard], dict[str, str | None]]:
    """Personalise software cards and record them, with deposit and first load, in the books."""
    now = datetime.now(UTC)
    cards: list[SoftCard] = []
    rows: list[dict[str, Any]] = []
    transfers: list[Transfer] = []
    schemes: dict[str, str | None] = {}
    for n in range(count):
        card_no = f"31{20260000 + n:014d}"
        card_type = CARD_TYPES[n % len(CARD_TYPES)]
        balance = rng.choice((3000, 5000, 10_000, 20_000, 50_000))
        scheme = SCHEMES[n % 3] if rng.random() < 0.7 else None
        schemes[card_no] = scheme
        cards.append(SoftCard.issue(store, card_no, card_type, balance_fen=balance))
        rows.append(
            {
                "card_no": card_no,
                "card_type": card_type.name.lower(),
                "holder_id": f"resident-{n:05d}",
                "holder_name": f"Resident {n:05d}",
                "scheme": scheme,
                "status": "active",
                "deposit_fen": DEPOSIT_FEN,
                "replaced_by": None,
                "replaces": None,
                "issued_at": now,
                "status_changed_at": now,
            }
        )
        for key, credit, amount, code in (
            ("deposit", books.card_deposit(card_no), DEPOSIT_FEN, TransferCode.CARD_DEPOSIT),
            ("load", books.card(card_no), balance, TransferCode.CARD_FIRST_LOAD),
        ):
            transfers.append(
                Transfer(
                    id=transfer_id(f"issue:{card_no}:{key}"),
                    debit_account_id=books.account_of(books.BANK_CASH).id,
                    credit_account_id=books.account_of(credit).id,
                    amount=amount,
                    ledger=LEDGER_CNY,
                    code=code,
                )
            )
    async with await Ledger.open(url) as ledger:
        async with ledger.transaction() as conn:
            await books.open_books(ledger, conn=conn)
            await conn.execute(insert(Card.__table__), rows)
            names = [books.card(r["card_no"]) for r in rows]
            names += [books.card_deposit(r["card_no"]) for r in rows]
            await books.ensure_accounts(ledger, names, conn=conn)
            for start in range(0, len(transfers), BATCH_MAX):
                results = await ledger.create_transfers(
                    transfers[start : start + BATCH_MAX], conn=conn
                )
                if not all(r.ok for r in results):
                    raise RuntimeError("the demo could not load its cards")
    return cards, schemes


def demo_bank_account(number: int) -> str:
    """A demo participant's payout account: its own range (6222 01...), apart from the escrow
    default (6222 00...01) the payouts are paid from."""
    return f"622201{number:013d}"


async def _register(url: str, buses: list[tuple[str, str, str]], clinic_key: str) -> None:
    now = datetime.now(UTC)
    async with await Ledger.open(url) as ledger, ledger.transaction() as conn:
        participants = [
            {
                "code": code,
                "name": name,
                "kind": "bus_operator",
                "commission_bp": bp,
                "bank_account": demo_bank_account(n),
                "bank_name": "Bank of the City",
                "scheme": None,
                "status": "active",
                "created_at": now,
            }
            for n, (code, name, bp) in enumerate(OPERATORS, start=1)
        ]
        participants.append(
            {
                "code": CLINIC[0],
                "name": CLINIC[1],
                "kind": "clinic",
                "commission_bp": CLINIC[2],
                "bank_account": demo_bank_account(99),
                "bank_name": "Bank of the City",
                "scheme": None,
                "status": "active",
                "created_at": now,
            }
        )
        participants.append(
            {
                "code": "medins-city",
                "name": "City Medical Insurance Fund",
                "kind": "insurer",
                "commission_bp": 0,
                "bank_account": demo_bank_account(100),
                "bank_name": "Bank of the City",
                "scheme": "urban",
                "status": "active",
                "created_at": now,
            }
        )
        await conn.execute(insert(Participant.__table__), participants)
        ids = {r[0]: r[1] for r in await conn.execute(text("SELECT code, id FROM participants"))}
        terminals = [
            {
                "terminal_id": terminal_id,
                "participant_id": ids[OPERATORS[n % len(OPERATORS)][0]],
                "kind": "bus",
                "line": route,
                "public_key": public_key,
                "status": "active",
                "seq_high": None,
                "created_at": now,
            }
            for n, (terminal_id, public_key, route) in enumerate(buses)
        ]
        terminals.append(
            {
                "terminal_id": CLINIC_TERMINAL,
                "participant_id": ids[CLINIC[0]],
                "kind": "clinic",
                "line": "outpatients",
                "public_key": clinic_key,
                "status": "active",
                "seq_high": None,
                "created_at": now,
            }
        )
        await conn.execute(insert(Terminal.__table__), terminals)


class _Server:
    """The clearing API on a free local port, in a background thread (uvicorn)."""

    def __init__(self) -> None:
        import uvicorn

        from clearing.api.app import create_app

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(create_app(get_settings()), log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + SERVER_START_S_MAX
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the clearing service did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()


def run_city_demo(
    console: Console,
    *,
    cards: int = CARDS_DEFAULT,
    buses: int = BUSES_DEFAULT,
    visits: int = VISITS_DEFAULT,
    seed: int = 2026,
) -> DemoReport:
    from clearing.celery_app import app as celery_app
    from clearing.lists.signing import load_server_key
    from terminals.client import ClearingClient
    from terminals.fares.feed import load_sample_feed
    from terminals.fleet import Fleet
    from terminals.journal import Batch, Journal
    from terminals.lists import ListStore
    from terminals.sam import Psam, SoftwareSam, provision_sam_keys
    from terminals.signing import new_credential
    from terminals.terminal import ClinicTerminal, ClinicVisit
    from terminals.uploader import Uploader

    started = time.perf_counter()
    report = DemoReport()
    rng = random.Random(seed)
    root = get_settings().data_dir / "demo"
    _prepare_environment(root)
    settings = get_settings()
    celery_app.conf.task_always_eager = True  # the embedded default: tasks run in-process
    url = settings.resolved_database_url()
    # The last business day whose cut-off has passed (yesterday's date is not always one: from
    # midnight to the cut-off, 04:00, the calendar's yesterday is still the open business day).
    day = calendar_of(settings).last_closed_day(datetime.now(UTC))
    progress = Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        setup = progress.add_task("setting up the city", total=4)
        db.upgrade(url)
        progress.advance(setup)
        store = create_key_store(settings.key_store)
        list_public = _public_hex(load_server_key(settings))
        feed = load_sample_feed()
        progress.advance(setup)
        soft_cards, schemes = asyncio.run(_issue_cards(url, store, cards, rng))
        report.cards = len(soft_cards)
        progress.advance(setup)

        with _Server() as server:
            fleet = Fleet(
                store,
                feed,
                root / "fleet",
                buses,
                clearing_url=server.url,
                list_public_key=list_public,
                seed=seed,
            )
            clinic_home = root / "clinic"
            clinic_home.mkdir()
            clinic_credential = new_credential(CLINIC_TERMINAL)
            asyncio.run(
                _register(
                    url,
                    [(b.terminal_id, b.credential.public_key_hex, b.route_id) for b in fleet.buses],
                    clinic_credential.public_key_hex,
                )
            )
            progress.advance(setup)

            topping_up = progress.add_task("residents top up on the phone", total=1)
            report.topups = residents_top_up(
                server.url,
                [(c.public_info.card_no, c.balance_fen) for c in soft_cards[:20]],
            )
            progress.advance(topping_up)

            groups = 10
            riders = soft_cards[: max(1, int(len(soft_cards) * RIDING_SHARE))]
            riding = progress.add_task(f"a day of {buses} buses ({day})", total=groups)
            for g in range(groups):
                part = riders[g::groups]
                bus_day = fleet.simulate_day(
                    part, day, offline_share=0.3, sync_every_taps=SYNC_EVERY_TAPS
                )
                report.taps += bus_day.taps
                report.paid += bus_day.paid
                report.offline_periods += sum(b.offline_periods for b in bus_day.buses)
                progress.advance(riding)

            keys = provision_sam_keys(
                store, bytes.fromhex(CLINIC_TERMINAL), clinic_home / "sam-keys.json"
            )
            journal = Journal(clinic_home / "journal.db", CLINIC_TERMINAL)
            lists = ListStore(clinic_home / "lists.json", list_public)
            client_factory = partial(ClearingClient, server.url, clinic_credential)
            visit_clock = [
                datetime.combine(day, datetime.min.time(), tzinfo=ZONE) + timedelta(hours=8)
            ]
            clinic = ClinicTerminal(
                journal,
                Psam(SoftwareSam(keys, clinic_home / "sam-serial")),
                lists,
                client_factory,
                purchase_key_index=keys.purchase.index,
                clock=lambda: visit_clock[0],
            )
            from cardio.inproc import InProcessTransport

            insured = [
                c
                for c in soft_cards
                if schemes[c.public_info.card_no] is not None and c.balance_fen >= 150_00
            ]
            clinic_task = progress.add_task("clinic visits", total=visits)
            for n in range(visits):
                visit_clock[0] += timedelta(minutes=11)
                card = insured[rng.randrange(len(insured))]
                result = clinic.charge(
                    InProcessTransport(card),
                    ClinicVisit(f"V-{day:%Y%m%d}-{n:04d}", rng.randrange(20_00, 150_00)),
                )
                report.visits += 1
                report.visits_paid += int(result.paid)
                report.visit_outcomes[result.outcome.value] = (
                    report.visit_outcomes.get(result.outcome.value, 0) + 1
                )
                progress.advance(clinic_task)
            Uploader(journal, lists, client_factory, interval_s=60).sync_once()
            report.bills = _bills(store, soft_cards, server.url, list_public, root, visit_clock[0])

            # Planted: a few forged records and a few uploaded twice, from the first bus.
            bus = fleet.buses[0]
            records = [r.to_wire() for r in bus.journal.records()][:8]
            forged = []
            for record in records[:3]:
                tac = bytes.fromhex(record["tac"])
                forged.append({**record, "tac": (bytes([tac[0] ^ 0x5A]) + tac[1:]).hex().upper()})
            with ClearingClient(server.url, bus.credential) as client:
                for batch_id, planted in (
                    ("planted-forged", forged),
                    ("planted-dup", records[3:8]),
                ):
                    body = json.dumps({"batch_id": batch_id, "records": planted}).encode()
                    client.upload_batch(Batch(0, batch_id, body, len(planted)))
            report.planted_forged = len(forged)
            report.planted_duplicates = len(records[3:8])
            fleet.close()
            journal.close()

        clearing = progress.add_task("clearing (Celery task, eager)", total=1)
        from clearing.engine.tasks import clear_staged

        report.clearing = clear_staged.delay(trigger="demo").get()
        progress.advance(clearing)
        settling = progress.add_task(f"settling {day}", total=1)
        from clearing.settlement.tasks import settle_task

        report.settlement = settle_task.delay(business_day=day.isoformat()).get()
        progress.advance(settling)
        from reconciliation.tasks import reconcile_task

        report.reconciliation = reconcile_task.delay(business_day=day.isoformat()).get()
    report.seconds = time.perf_counter() - started
    return report


def _bills(
    store: KeyStore, cards: list[SoftCard], url: str, list_public: str, root: Path, at: datetime
) -> Any:
    """Bills paid by card at the billers' counters (clearing/cli/bills_demo.py)."""
    from clearing.cli.bills_demo import pay_bills_at_the_counter

    payers = [card for card in cards if card.balance_fen >= 20_000]
    minutes = iter(range(1, 10_000))
    return pay_bills_at_the_counter(
        store,
        payers,
        clearing_url=url,
        list_public_key=list_public,
        home=root / "counter",
        clock=lambda: at + timedelta(minutes=next(minutes)),
    )


async def _summary_data(url: str, day: date) -> tuple[Any, dict[str, int], list[Any]]:
    from clearing.quarantine import service as quarantine
    from clearing.settlement.service import load_settlement

    async with await Ledger.open(url) as ledger, ledger.engine.connect() as conn:
        settlement = await load_settlement(conn, day)
        counts = await quarantine.counts_by_reason(conn)
        rows = await quarantine.list_quarantined(conn, limit=10)
    return settlement, counts, rows


def print_city_report(console: Console, report: DemoReport) -> None:
    from clearing.cli.clearing_cmd import print_quarantine, print_settlement, yuan
    from clearing.settlement.service import settlement_dir

    settings = get_settings()
    day = date.fromisoformat(report.settlement["business_day"])
    settlement, counts, rows = asyncio.run(_summary_data(settings.resolved_database_url(), day))
    console.print(
        f"\n[bold]{report.cards}[/bold] cards; [bold]{report.taps}[/bold] bus taps "
        f"({report.paid} paid, {report.offline_periods} offline stretches of buses); "
        f"{report.visits_paid}/{report.visits} clinic visits paid; planted "
        f"{report.planted_forged} forged and {report.planted_duplicates} duplicated records"
    )
    t = report.topups
    if t is not None and t.stripe:
        console.print(
            f"{t.asked} residents topped up on the phone through Stripe ({t.stripe}): {t.paid} "
            f"paid, {yuan(t.amount_fen)} CNY on the action list for their cards' next tap"
            f"{f', {t.refused} refused' if t.refused else ''}"
        )
    elif t is not None:
        console.print("no phone top-ups: localstripe is not running (bash scripts/stripe.sh start)")
    if report.bills is not None:
        b = report.bills
        console.print(
            f"{b.paid} water and power bills paid by card at the billers' counters "
            f"({yuan(b.amount_fen)} CNY), {b.acknowledged} acknowledged by the billers"
        )
    c = report.clearing
    console.print(
        f"cleared {c['records_seen']} records: {c['posted']} posted "
        f"({yuan(c['amount_fen_posted'])} CNY from cards), {c['duplicates']} duplicates, "
        f"{c['voided']} torn taps void, {c['quarantined']} quarantined"
    )

    class _Files:
        def __init__(self, data: dict[str, Any]) -> None:
            folder = settlement_dir(settings)
            self.csv = data["csv"]
            self.xml = data["xml"]
            self.claims = str(folder / f"settlement-{day.isoformat()}-claims.csv")

    settlement = dataclasses.replace(
        settlement, already_settled=report.settlement["already_settled"]
    )
    print_settlement(settlement, _Files(report.settlement), console)
    print_quarantine(rows, counts, console)
    r = report.reconciliation
    console.print(
        f"reconciled: {r['breaks_found']} breaks found, {r['breaks_open']} open "
        f"(`onecard breaks list`; report: `onecard reconcile --date {day} --report DIR`)"
    )
    console.print(f"demo data: {settings.data_dir}  ({report.seconds:.0f} s)")
