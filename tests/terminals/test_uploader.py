"""Uploader, list sync, clinic split and load kiosk against a protocol-faithful fake server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cardio.records import CardType
from terminals.client import ClearingClient
from terminals.errors import ListSignatureInvalid, ServiceUnavailable
from terminals.journal import Journal
from terminals.kiosk import LoadKiosk
from terminals.lists import ListStore
from terminals.sam import LoadHost, Psam, SerialStore, load_sam_keys
from terminals.signing import new_credential
from terminals.terminal import ClinicTerminal, ClinicVisit, TapOutcome
from terminals.uploader import Uploader

from .conftest import TERMINAL_ID
from .fake_clearing import FakeClearing


@pytest.fixture
def server():
    with FakeClearing() as fake:
        yield fake


@pytest.fixture
def credential(server):
    credential = new_credential(TERMINAL_ID)
    server.register(TERMINAL_ID, credential.public_key_hex)
    return credential


@pytest.fixture
def server_lists(server, tmp_path):
    return ListStore(tmp_path / "server-lists.json", server.list_public_key)


def uploader_for(journal, lists, server, credential, **options):
    return Uploader(journal, lists, lambda: ClearingClient(server.url, credential), **options)


def tap_some(validator, make_card, count):
    transport = make_card(balance_fen=100_000)
    for _ in range(count):
        assert validator.tap(transport).paid
        validator.clock.advance(minutes=61)


def test_upload_stores_every_record_once_and_marks_it_uploaded(
    validator, make_card, journal, server, credential, server_lists
):
    tap_some(validator, make_card, 7)
    uploader = uploader_for(journal, server_lists, server, credential, records_per_batch=3)
    report = uploader.sync_once()
    assert (report.batches_sent, report.records_sent, report.duplicates) == (3, 7, 0)
    assert sorted(seq for (_, seq) in server.state.records) == list(range(1, 8))
    assert journal.stats().pending_upload == 0
    assert uploader.sync_once().batches_sent == 0


def test_lost_acknowledgement_is_resent_and_yields_no_duplicate(
    validator, make_card, journal, server, credential, server_lists
):
    tap_some(validator, make_card, 4)
    server.state.drop_after_store = 1
    uploader = uploader_for(journal, server_lists, server, credential)
    with pytest.raises(ServiceUnavailable):
        uploader.sync_once()
    assert server.state.record_posts == 4  # the server stored the batch ...
    assert journal.stats().uploaded == 0  # ... but the terminal never heard so
    report = uploader.sync_once()
    assert (report.batches_sent, report.duplicates) == (1, 1)
    assert server.state.record_posts == 4 and len(server.state.batches) == 1
    assert journal.stats().uploaded == 4


def test_service_down_backs_off_and_nothing_is_marked_uploaded(
    validator, make_card, journal, server, credential, server_lists
):
    tap_some(validator, make_card, 2)
    server.state.fail_with_503 = 1
    uploader = uploader_for(
        journal, server_lists, server, credential, backoff_initial_s=2, backoff_max_s=60
    )
    with pytest.raises(ServiceUnavailable):
        uploader.sync_once()
    assert journal.stats().uploaded == 0
    uploader.failures = 3
    assert 8 <= uploader.backoff_s() <= 16
    uploader.failures = 40
    assert uploader.backoff_s() <= 60
    assert uploader.sync_once().records_sent == 2


def test_unreachable_service_is_service_unavailable(journal, server_lists, credential):
    uploader = Uploader(
        journal, server_lists, lambda: ClearingClient("http://127.0.0.1:9", credential)
    )
    journal_empty = journal.stats().records == 0
    with pytest.raises(ServiceUnavailable):
        uploader.sync_once()
    assert journal_empty


def test_deny_list_deltas_are_applied_in_order_and_records_name_their_version(
    validator, make_card, journal, server, credential, tmp_path
):
    lists = ListStore(tmp_path / "lists.json", server.list_public_key)
    validator.lists = lists
    stolen = make_card(balance_fen=1000)
    card_no = stolen.card.card_no
    server.deny(added={"3100000000000777"})
    uploader = uploader_for(journal, lists, server, credential)
    uploader.sync_once()
    assert lists.versions().deny == 1 and not lists.is_denied(card_no)
    server.deny(added={card_no})
    server.deny(removed={"3100000000000777"})
    uploader.sync_once()
    assert (
        lists.versions().deny == 3
        and lists.is_denied(card_no)
        and not lists.is_denied("3100000000000777")
    )
    assert "GET /v1/terminals/000001000050/deny-list?since=1" in server.state.requests
    # Offline from here on: the list on disk still refuses the card.
    reloaded = ListStore(tmp_path / "lists.json", server.list_public_key)
    validator.lists = reloaded
    assert validator.tap(stolen).outcome is TapOutcome.DENIED
    assert validator.tap(make_card()).record.deny_list_version == 3


def test_a_list_with_a_bad_signature_is_refused(list_server, tmp_path):
    lists = ListStore(tmp_path / "lists.json", list_server.public_key_hex)
    body = list_server.delta("deny", 0, 5, ["3100000000000001"], [], full=True)
    body["added"] = ["3100000000000002"]  # tampered after signing
    with pytest.raises(ListSignatureInvalid):
        lists.apply(body)
    assert lists.versions().deny == 0 and not lists.is_denied("3100000000000002")


def test_wrong_credential_is_refused_by_the_server(journal, server, server_lists):
    impostor = new_credential(TERMINAL_ID)  # not the registered key
    uploader = Uploader(journal, server_lists, lambda: ClearingClient(server.url, impostor))
    from terminals.errors import UploadRefused

    with pytest.raises(UploadRefused) as refused:
        uploader.sync_once()
    assert refused.value.status == 401


def test_clinic_splits_online_and_falls_back_to_full_charge_offline(
    journal, sam, server, credential, make_card, clock, server_lists
):
    patient = make_card(CardType.SENIOR, balance_fen=20_000)
    card_no = patient.card.card_no
    server.state.splits[card_no] = (700, "urban_employee", "outpatient_70pct")
    online = ClinicTerminal(
        journal,
        Psam(sam),
        server_lists,
        lambda: ClearingClient(server.url, credential),
        clock=clock,
    )
    result = online.charge(patient, ClinicVisit("V-1", 10_000))
    assert result.outcome is TapOutcome.OK
    assert (
        result.record.amount_fen,
        result.record.insured_fen,
        result.record.offline_fallback,
    ) == (3000, 7000, False)
    assert patient.card.balance_fen == 17_000
    offline = ClinicTerminal(
        journal,
        Psam(sam),
        server_lists,
        lambda: ClearingClient("http://127.0.0.1:9", credential),
        clock=clock,
    )
    fallback = offline.charge(patient, ClinicVisit("V-2", 5_000))
    assert (
        fallback.record.amount_fen,
        fallback.record.insured_fen,
        fallback.record.offline_fallback,
    ) == (5000, 0, True)
    assert patient.card.balance_fen == 12_000
    kinds = [(r.kind.value, r.visit_id) for r in journal.records()]
    assert kinds == [("clinic", "V-1"), ("clinic", "V-2")]


def test_kiosk_delivers_a_pending_load_once_and_reports_the_tac(
    server, credential, make_card, clock, tmp_path, issuer
):
    kiosk_id = "000001000051"
    kiosk_credential = new_credential(kiosk_id)
    server.register(kiosk_id, kiosk_credential.public_key_hex)
    from terminals.sam import provision_sam_keys

    keys = provision_sam_keys(
        issuer, bytes.fromhex(kiosk_id), tmp_path / "kiosk-keys.json", with_load=True
    )
    journal = Journal(tmp_path / "kiosk.db", kiosk_id)
    lists = ListStore(tmp_path / "kiosk-lists.json", server.list_public_key)
    transport = make_card(balance_fen=100)
    card_no = transport.card.card_no
    expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    server.add_load("L-0001", card_no, 5000, expires)
    uploader = Uploader(journal, lists, lambda: ClearingClient(server.url, kiosk_credential))
    uploader.sync_once()
    kiosk = LoadKiosk(
        journal,
        LoadHost(load_sam_keys(tmp_path / "kiosk-keys.json")),
        SerialStore(tmp_path / "ks"),
        lists,
        clock=clock,
    )
    result = kiosk.deliver(transport)
    assert result.outcome is TapOutcome.OK and transport.card.balance_fen == 5100
    (record,) = result.delivered
    assert (record.kind.value, record.load_id, record.amount_fen, record.balance_after_fen) == (
        "load",
        "L-0001",
        5000,
        5100,
    )
    assert len(record.tac) == 8
    assert kiosk.deliver(transport).delivered == ()  # never twice
    assert transport.card.balance_fen == 5100
    uploader.sync_once()
    uploaded = server.state.records[(kiosk_id, record.terminal_seq)]
    assert uploaded["kind"] == "load" and uploaded["tac"] == record.tac
    del keys
    journal.close()


def test_torn_load_is_completed_on_the_next_presentation(
    server, credential, make_card, clock, tmp_path, issuer, list_server
):
    from terminals.sam import provision_sam_keys

    keys = provision_sam_keys(
        issuer, bytes.fromhex("000001000052"), tmp_path / "k.json", with_load=True
    )
    journal = Journal(tmp_path / "k.db", "000001000052")
    lists = ListStore(None, list_server.public_key_hex)
    transport = make_card(balance_fen=0)
    card_no = transport.card.card_no
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    lists.apply(
        list_server.delta(
            "action",
            0,
            1,
            [{"load_id": "L-9", "card_no": card_no, "amount_fen": 800, "expires_at": expires}],
            [],
            full=True,
        )
    )
    kiosk = LoadKiosk(journal, LoadHost(keys), SerialStore(tmp_path / "s"), lists, clock=clock)
    transport.tear_next(0x52)
    assert kiosk.deliver(transport).outcome is TapOutcome.TORN
    assert transport.card.balance_fen == 800
    transport.insert()
    again = kiosk.deliver(transport)
    assert again.delivered == () and transport.card.balance_fen == 800
    (record,) = journal.records()
    assert record.status.value == "complete" and record.tac is not None
    journal.close()


def test_a_visit_is_paid_once_even_after_a_torn_charge(
    journal, sam, make_card, clock, server_lists
):
    patient = make_card(balance_fen=10_000)
    clinic = ClinicTerminal(journal, Psam(sam), server_lists, None, clock=clock)
    patient.tear_next(0x54)
    assert clinic.charge(patient, ClinicVisit("V-7", 2_500)).outcome is TapOutcome.TORN
    patient.insert()
    again = clinic.charge(patient, ClinicVisit("V-7", 2_500))
    assert again.outcome is TapOutcome.RECOVERED and patient.card.balance_fen == 7_500
    twice = clinic.charge(patient, ClinicVisit("V-7", 2_500))
    assert twice.outcome is TapOutcome.RECOVERED and patient.card.balance_fen == 7_500
    (record,) = journal.records()
    assert record.offline_fallback and record.status.value == "complete"


def test_background_uploader_is_woken_by_taps_and_never_blocks_them(
    validator, make_card, journal, server, credential, server_lists
):
    import threading

    uploader = uploader_for(journal, server_lists, server, credential, interval_s=3600)
    validator.on_record = uploader.wake
    uploader.start()
    try:
        transport = make_card(balance_fen=10_000)
        for _ in range(3):
            assert validator.tap(transport).paid  # the tap returns whatever the uploader does
            validator.clock.advance(minutes=61)
        done = threading.Event()
        for _ in range(500):  # poll for the condition, bounded (no fixed sleep)
            if journal.stats().uploaded == 3:
                done.set()
                break
            done.wait(0.02)
        assert done.is_set(), uploader.last_error
    finally:
        uploader.stop()
    assert sorted(seq for (_, seq) in server.state.records) == [1, 2, 3]


def test_a_load_record_carries_what_the_back_office_needs_to_verify_its_tac(
    make_card, clock, tmp_path, issuer, list_server
):
    from cardio.crypto import verify_load_tac
    from cardio.keystore import KeyKind
    from cardio.records import card_number_bytes
    from terminals.sam import provision_sam_keys

    keys = provision_sam_keys(
        issuer, bytes.fromhex("000001000053"), tmp_path / "k.json", with_load=True
    )
    journal = Journal(tmp_path / "k.db", "000001000053")
    lists = ListStore(None, list_server.public_key_hex)
    transport = make_card(balance_fen=700)
    card_no = transport.card.card_no
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    lists.apply(
        list_server.delta(
            "action",
            0,
            1,
            [{"load_id": "L-5", "card_no": card_no, "amount_fen": 1200, "expires_at": expires}],
            [],
            full=True,
        )
    )
    kiosk = LoadKiosk(journal, LoadHost(keys), SerialStore(tmp_path / "s"), lists, clock=clock)
    (record,) = kiosk.deliver(transport).delivered
    assert verify_load_tac(
        issuer.master(KeyKind.TAC).key,
        card_number_bytes(card_no),
        record.balance_after_fen,
        record.card_counter,
        record.amount_fen,
        record.txn_type,
        bytes.fromhex("000001000053"),
        record.occurred_at,
        bytes.fromhex(record.tac),
    )
    journal.close()


def test_lists_never_go_back_to_an_older_version(list_server, tmp_path):
    from terminals.lists import ListDeltaRefused

    lists = ListStore(tmp_path / "lists.json", list_server.public_key_hex)
    old_full = list_server.delta("deny", 0, 4, [], [], full=True)
    lists.apply(list_server.delta("deny", 0, 5, ["3100000000000001"], [], full=True))
    with pytest.raises(ListDeltaRefused):
        lists.apply(old_full)  # a replayed, genuinely signed older list
    with pytest.raises(ListDeltaRefused):
        lists.apply(list_server.delta("deny", 3, 6, [], ["3100000000000001"]))  # skips versions
    assert lists.is_denied("3100000000000001") and lists.versions().deny == 5
    assert lists.apply(list_server.delta("deny", 5, 6, [], ["3100000000000001"]))
    assert not lists.is_denied("3100000000000001")
    assert not lists.apply(list_server.delta("deny", 5, 6, [], []))  # already held


def test_a_batch_id_reused_with_other_records_is_refused_and_nothing_marked_uploaded(
    validator, make_card, journal, server, credential, server_lists, tmp_path
):
    from terminals.errors import UploadRefused

    tap_some(validator, make_card, 2)
    uploader_for(journal, server_lists, server, credential).sync_once()
    # A replaced terminal whose journal started again under the same id: its batch 1 differs.
    fresh = Journal(tmp_path / "fresh.db", TERMINAL_ID)
    from terminals.journal import RecordKind, RecordStatus, TapRecord

    draft = TapRecord(
        RecordKind.PURCHASE,
        RecordStatus.GREY,
        0,
        "3100000000000999",
        0,
        9,
        200,
        500,
        300,
        datetime(2026, 11, 30, tzinfo=UTC),
        None,
        "adult",
    )
    intent = fresh.append_intent(draft)
    from dataclasses import replace

    fresh.append_grey(intent, replace(draft, terminal_seq=1))
    fresh.complete(1, b"\x01\x02\x03\x04", 300)
    with pytest.raises(UploadRefused) as refused:
        uploader_for(fresh, server_lists, server, credential).sync_once()
    assert refused.value.status == 409
    assert fresh.stats().uploaded == 0 and fresh.stats().batches_unacked == 1
    fresh.close()
