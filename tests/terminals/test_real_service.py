"""The terminal client against the real clearing service (uvicorn, embedded SQLite), through a
TCP proxy that can forward a request and then drop the connection before the answer comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from clearing import db
from clearing.api.app import create_app
from clearing.lists import service as lists_service
from clearing.registry import service as registry_service
from clearing.registry.models import ParticipantKind, TerminalKind
from clearing.registry.schemas import CardIssue, ParticipantCreate, TerminalCreate
from clearing.settings import ESCROW_ACCOUNT_DEFAULT, Settings
from terminals.client import ClearingClient
from terminals.errors import ServiceUnavailable
from terminals.lists import ListStore
from terminals.signing import TerminalCredential, new_credential
from terminals.terminal import TapOutcome
from terminals.uploader import Uploader

from .conftest import TERMINAL_ID

LIST_SEED_HEX = "22" * 32
STOLEN_CARD = "3100000000000666"
CLINIC_ID = "000001000070"
PATIENT_CARD = "3100000000000707"
SERVER_START_POLLS_MAX = 1000


class DroppingProxy:
    """TCP proxy: relays each connection; while `drop_answers` > 0 it reads the server's whole
    answer to a request and closes the client's connection instead of relaying it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.drop_answers = 0
        self.dropped = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server = socket.create_connection(self.upstream)
        client.settimeout(0.05)
        server.settimeout(0.05)
        with contextlib.closing(client), contextlib.closing(server):
            while True:
                try:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    server.sendall(chunk)
                except TimeoutError:
                    pass
                try:
                    answer = server.recv(65536)
                except TimeoutError:
                    continue
                if not answer:
                    return
                if self.drop_answers > 0:
                    self.drop_answers -= 1
                    self.dropped += 1
                    # The server has answered (so it stored the batch); the terminal never hears it.
                    client.shutdown(socket.SHUT_RDWR)
                    return
                client.sendall(answer)


@dataclass
class RealService:
    url: str
    db_url: str
    list_public_key: str
    credential: TerminalCredential
    clinic_credential: TerminalCredential


async def _seed(url: str, credential: TerminalCredential, clinic: TerminalCredential) -> None:
    engine = db.make_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session:
        await registry_service.create_participant(
            session,
            ParticipantCreate(
                code="plateau-bus",
                name="Plateau City Bus Company",
                kind=ParticipantKind.BUS_OPERATOR,
                commission_bp=150,
                bank_account="6222020200112233445",
                bank_name="ICBC Plateau City",
            ),
            escrow_account=ESCROW_ACCOUNT_DEFAULT,
        )
        await registry_service.register_terminal(
            session,
            TerminalCreate(
                terminal_id=TERMINAL_ID,
                participant="plateau-bus",
                kind=TerminalKind.BUS,
                line="1",
                public_key=credential.public_key_hex,
            ),
        )
        await lists_service.deny_card(session, STOLEN_CARD, "reported stolen")
        await registry_service.create_participant(
            session,
            ParticipantCreate(
                code="plateau-clinic",
                name="Plateau People's Clinic",
                kind=ParticipantKind.CLINIC,
                commission_bp=50,
                bank_account="6222020200112233446",
                bank_name="ICBC Plateau City",
            ),
            escrow_account=ESCROW_ACCOUNT_DEFAULT,
        )
        await registry_service.register_terminal(
            session,
            TerminalCreate(
                terminal_id=CLINIC_ID,
                participant="plateau-clinic",
                kind=TerminalKind.CLINIC,
                line="outpatients",
                public_key=clinic.public_key_hex,
            ),
        )
        await registry_service.issue_card(
            session,
            None,
            CardIssue(
                card_no=PATIENT_CARD,
                card_type="senior",
                holder_id="resident-707",
                holder_name="Zhuoma",
                scheme="urban",
                deposit_fen=0,
                first_load_fen=0,
            ),
            "test",
        )
        await session.commit()
    await engine.dispose()


async def _count(url: str, sql: str) -> int:
    engine = db.make_engine(url)
    async with engine.connect() as conn:
        value = (await conn.execute(text(sql))).scalar_one()
    await engine.dispose()
    return int(value)


@pytest.fixture
def real_service(sqlite_url: str, tmp_path: Path) -> Iterator[RealService]:
    credential = new_credential(TERMINAL_ID)
    clinic_credential = new_credential(CLINIC_ID)
    asyncio.run(_seed(sqlite_url, credential, clinic_credential))
    settings = Settings(
        database_url=sqlite_url, data_dir=tmp_path / "var", list_signing_key=LIST_SEED_HEX
    )
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(SERVER_START_POLLS_MAX):
        if server.started or not thread.is_alive():
            break
        started.wait(0.01)
    assert server.started, "the clearing service did not start"
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(LIST_SEED_HEX)).public_key()
    public = key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    port = sock.getsockname()[1]
    yield RealService(f"http://127.0.0.1:{port}", sqlite_url, public, credential, clinic_credential)
    server.should_exit = True
    thread.join(timeout=10)


def test_upload_through_a_dropping_proxy_stores_each_record_once(
    real_service, validator, make_card, tmp_path
):
    transport = make_card(balance_fen=10_000)
    for _ in range(5):
        assert validator.tap(transport).paid
        validator.clock.advance(minutes=61)
    port = int(real_service.url.rsplit(":", 1)[1])
    proxy = DroppingProxy(("127.0.0.1", port))
    lists = ListStore(tmp_path / "lists.json", real_service.list_public_key)
    uploader = Uploader(
        validator.journal,
        lists,
        lambda: ClearingClient(proxy.url, real_service.credential),
        records_per_batch=3,
    )
    proxy.drop_answers = 1
    with pytest.raises(ServiceUnavailable):
        uploader.sync_once()
    assert proxy.dropped == 1
    assert validator.journal.stats().uploaded == 0
    stored = asyncio.run(_count(real_service.db_url, "SELECT COUNT(*) FROM tap_records"))
    assert stored == 3  # the first batch reached the server before the connection died
    report = uploader.sync_once()
    assert report.batches_sent == 2 and report.duplicates == 1 and report.records_sent == 5
    assert asyncio.run(_count(real_service.db_url, "SELECT COUNT(*) FROM tap_records")) == 5
    assert asyncio.run(_count(real_service.db_url, "SELECT COUNT(*) FROM ingest_batches")) == 2
    assert validator.journal.stats().pending_upload == 0
    # The deny list came down on the same connection, signed; the stolen card is refused offline.
    assert lists.is_denied(STOLEN_CARD) and lists.versions().deny >= 1
    proxy.close()


def test_a_stolen_card_listed_by_the_real_service_is_refused_offline(
    real_service, journal, sam, sample_feed, clock, tmp_path, issuer
):
    from cardio.inproc import InProcessTransport
    from cardio.softcard import SoftCard
    from terminals.sam import Psam
    from terminals.terminal import Validator

    lists = ListStore(tmp_path / "lists.json", real_service.list_public_key)
    Uploader(
        journal, lists, lambda: ClearingClient(real_service.url, real_service.credential)
    ).sync_once()
    # From here on the bus is offline.
    bus = Validator(
        journal,
        Psam(sam),
        sample_feed,
        ListStore(tmp_path / "lists.json", real_service.list_public_key),
        "1",
        "old_town",
        clock=clock,
    )
    stolen = InProcessTransport(SoftCard.issue(issuer, STOLEN_CARD, balance_fen=1000))
    assert bus.tap(stolen).outcome is TapOutcome.DENIED
    assert stolen.card.balance_fen == 1000 and journal.records() == []


def test_clinic_split_from_the_real_service_then_offline_fallback(
    real_service, issuer, tmp_path, clock
):
    from cardio.inproc import InProcessTransport
    from cardio.records import CardType
    from cardio.softcard import SoftCard
    from terminals.journal import Journal
    from terminals.sam import Psam, SoftwareSam, provision_sam_keys
    from terminals.terminal import ClinicTerminal, ClinicVisit

    # The service answers a split only for a visit within 7 days of its own clock (the real
    # one): the terminal's clock starts at the real now, not at the fixture's fixed date.
    clock.now = datetime.now(UTC).replace(microsecond=0)
    keys = provision_sam_keys(issuer, bytes.fromhex(CLINIC_ID), tmp_path / "clinic-keys.json")
    journal = Journal(tmp_path / "clinic.db", CLINIC_ID)
    lists = ListStore(tmp_path / "clinic-lists.json", real_service.list_public_key)
    sam = SoftwareSam(keys, tmp_path / "clinic-serial")
    online = ClinicTerminal(
        journal,
        Psam(sam),
        lists,
        lambda: ClearingClient(real_service.url, real_service.clinic_credential),
        clock=clock,
    )
    patient = InProcessTransport(
        SoftCard.issue(issuer, PATIENT_CARD, CardType.SENIOR, balance_fen=100_000)
    )
    result = online.charge(patient, ClinicVisit("V-2026-0001", 30_000))
    assert result.outcome is TapOutcome.OK, result.message
    record = result.record
    assert record.insured_fen > 0 and record.insured_fen + record.amount_fen == 30_000
    assert not record.offline_fallback and record.fare_rule.startswith("urban:")
    assert patient.card.balance_fen == 100_000 - record.amount_fen
    # The same visit presented again is not charged twice.
    assert (
        online.charge(patient, ClinicVisit("V-2026-0001", 30_000)).outcome is TapOutcome.RECOVERED
    )
    offline = ClinicTerminal(
        journal,
        Psam(sam),
        lists,
        lambda: ClearingClient("http://127.0.0.1:9", real_service.clinic_credential),
        clock=clock,
    )
    fallback = offline.charge(patient, ClinicVisit("V-2026-0002", 5_000))
    assert fallback.record.offline_fallback and fallback.record.amount_fen == 5_000
    # Both records upload to the real service.
    report = Uploader(
        journal, lists, lambda: ClearingClient(real_service.url, real_service.clinic_credential)
    ).sync_once()
    assert report.records_sent == 2
    journal.close()
