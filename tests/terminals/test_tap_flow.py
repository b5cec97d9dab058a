"""The validator's tap flow against the software card and the software SAM (in-process reader)."""

from __future__ import annotations

from datetime import date

from cardio.inproc import InProcessTransport
from cardio.keystore import create_key_store
from cardio.records import CardType
from cardio.softcard import SoftCard
from terminals.journal import RecordStatus
from terminals.terminal import TapOutcome


def card_of(transport: InProcessTransport) -> SoftCard:
    return transport.card  # type: ignore[return-value]


def test_a_paid_tap_debits_the_card_and_journals_a_complete_record(validator, make_card, journal):
    transport = make_card(balance_fen=1000)
    result = validator.tap(transport)
    assert result.outcome is TapOutcome.OK and result.message == "OK 2.00 balance 8.00"
    assert card_of(transport).balance_fen == 800
    (record,) = journal.records()
    assert record.status is RecordStatus.COMPLETE and record.tac == result.record.tac
    assert (record.amount_fen, record.balance_before_fen, record.balance_after_fen) == (
        200,
        1000,
        800,
    )
    assert record.card_counter == 0 and record.terminal_seq == 1 and record.txn_type == 9
    assert (record.route_id, record.stop_id, record.fare_rule) == (
        "1",
        "old_town",
        "urban:urban_flat",
    )


def test_transfer_and_cap_state_travel_on_the_card_between_validators(
    validator, make_card, journal, clock, sam, sample_feed, lists
):
    transport = make_card(balance_fen=5000)
    assert validator.tap(transport).record.amount_fen == 200
    clock.advance(minutes=30)
    validator.move_to("2", "university")
    second = validator.tap(transport)
    assert second.record.amount_fen == 0 and "transfer" in second.record.fare_rule
    clock.advance(minutes=90)
    for _ in range(3):
        validator.tap(transport)
        clock.advance(minutes=70)
    # 2.00 + 0 + 2.00 + 2.00 + (cap 6.00 reached) 0
    assert [r.amount_fen for r in journal.records()] == [200, 0, 200, 200, 0]
    assert card_of(transport).balance_fen == 5000 - 600


def test_concession_cards_record_the_full_fare_for_the_subsidy_claim(validator, make_card, journal):
    senior = make_card(CardType.SENIOR)
    student = make_card(CardType.STUDENT)
    assert validator.tap(senior).outcome is TapOutcome.OK
    assert validator.tap(student).outcome is TapOutcome.OK
    senior_record, student_record = journal.records()
    assert (
        senior_record.amount_fen,
        senior_record.full_fare_fen,
        senior_record.rider_category,
    ) == (0, 200, "senior")
    assert (student_record.amount_fen, student_record.full_fare_fen) == (100, 200)


def test_a_deny_listed_card_is_refused_offline_and_not_charged(
    validator, make_card, journal, lists, list_server
):
    transport = make_card(balance_fen=1000)
    card_no = card_of(transport).card_no
    lists.apply(list_server.delta("deny", 0, 7, [card_no], [], full=True))
    result = validator.tap(transport)
    assert result.outcome is TapOutcome.DENIED
    assert card_of(transport).balance_fen == 1000 and journal.records() == []
    other = make_card()
    assert validator.tap(other).record.deny_list_version == 7


def test_expired_and_not_yet_valid_cards_are_refused(validator, make_card, journal):
    expired = make_card(valid_until=date(2026, 11, 29))
    future = make_card(valid_from=date(2026, 12, 1))
    assert validator.tap(expired).outcome is TapOutcome.NOT_VALID
    assert validator.tap(future).outcome is TapOutcome.NOT_VALID
    assert journal.records() == []


def test_insufficient_balance_is_refused_before_the_sam_is_asked(
    validator, make_card, journal, sam
):
    result = validator.tap(make_card(balance_fen=150))
    assert result.outcome is TapOutcome.INSUFFICIENT_BALANCE
    assert sam.last_serial == 0 and journal.records() == []


def test_a_card_of_another_issuer_is_refused_and_not_charged(validator, journal, tmp_path):
    stranger = create_key_store(tmp_path / "other-issuer.json")
    transport = InProcessTransport(SoftCard.issue(stranger, "3100000000009999", balance_fen=1000))
    result = validator.tap(transport)
    assert result.outcome is TapOutcome.CARD_ERROR
    assert card_of(transport).balance_fen == 1000
    (record,) = journal.records()
    assert journal.outcome(record.terminal_seq) == "not_debited"


def test_torn_debit_is_completed_at_the_next_presentation_without_a_second_charge(
    validator, make_card, journal, clock
):
    transport = make_card(balance_fen=1000)
    transport.tear_next(0x54)  # the card debits itself, then leaves before answering
    assert validator.tap(transport).outcome is TapOutcome.TORN
    assert card_of(transport).balance_fen == 800
    (grey,) = journal.unresolved_grey()
    transport.insert()
    clock.advance(seconds=20)
    again = validator.tap(transport)
    assert again.outcome is TapOutcome.RECOVERED
    assert card_of(transport).balance_fen == 800  # charged once
    (record,) = journal.records()
    assert record.status is RecordStatus.COMPLETE and record.terminal_seq == grey.terminal_seq
    assert record.tac is not None


def test_torn_before_the_debit_reached_the_card_is_charged_once_on_retap(
    validator, make_card, journal, clock
):
    transport = make_card(balance_fen=1000)
    transport.tear_next(0xDC)  # leaves right after UPDATE CAPP DATA CACHE: no DEBIT happened
    assert validator.tap(transport).outcome is TapOutcome.TORN
    assert card_of(transport).balance_fen == 1000
    transport.insert()
    clock.advance(seconds=10)
    again = validator.tap(transport)
    assert again.outcome is TapOutcome.OK
    assert card_of(transport).balance_fen == 800
    first, second = journal.records()
    assert journal.outcome(first.terminal_seq) == "not_debited"
    assert second.status is RecordStatus.COMPLETE and journal.sequence_holes() == []


def test_a_late_return_completes_the_old_tap_and_charges_the_new_ride(
    validator, make_card, journal, clock
):
    transport = make_card(balance_fen=1000)
    transport.tear_next(0x54)
    validator.tap(transport)
    transport.insert()
    clock.advance(hours=3)
    result = validator.tap(transport)
    assert result.outcome is TapOutcome.OK and len(result.recovered) == 1
    assert card_of(transport).balance_fen == 600
    assert [r.status for r in journal.records()] == [RecordStatus.COMPLETE, RecordStatus.COMPLETE]


def test_card_pulled_during_selection_leaves_nothing_behind(validator, make_card, journal):
    transport = make_card()
    transport.tear_next(0xA4)
    assert validator.tap(transport).outcome is TapOutcome.CARD_REMOVED
    assert journal.records() == []


def other_bus(issuer, tmp_path, sample_feed, lists, clock):
    from terminals.journal import Journal
    from terminals.sam import Psam, SoftwareSam, provision_sam_keys
    from terminals.terminal import Validator

    keys = provision_sam_keys(issuer, bytes.fromhex("000001000061"), tmp_path / "b-keys.json")
    journal = Journal(tmp_path / "b.db", "000001000061")
    return Validator(
        journal,
        Psam(SoftwareSam(keys, tmp_path / "b-serial")),
        sample_feed,
        lists,
        "5",
        "monastery",
        clock=clock,
    )


def test_torn_debit_whose_proof_is_gone_stays_grey_for_clearing(
    validator, make_card, journal, clock, issuer, tmp_path, sample_feed, lists
):
    transport = make_card(balance_fen=1000)
    transport.tear_next(0x54)  # debited on bus A, answer lost
    validator.tap(transport)
    transport.insert()
    clock.advance(minutes=90)
    assert (
        other_bus(issuer, tmp_path, sample_feed, lists, clock).tap(transport).outcome
        is TapOutcome.OK
    )
    clock.advance(minutes=90)
    back = validator.tap(transport)  # bus A sees the card again: its proof was overwritten by bus B
    assert back.outcome is TapOutcome.OK
    first, second = journal.records()
    assert first.status is RecordStatus.GREY and journal.outcome(first.terminal_seq) is None
    assert second.status is RecordStatus.COMPLETE
    assert transport.card.balance_fen == 1000 - 200 - 200 - 200


def test_torn_before_debit_then_used_elsewhere_is_known_not_debited(
    validator, make_card, journal, clock, issuer, tmp_path, sample_feed, lists
):
    transport = make_card(balance_fen=1000)
    transport.tear_next(0xDC)  # never debited on bus A
    validator.tap(transport)
    transport.insert()
    clock.advance(minutes=90)
    other_bus(issuer, tmp_path, sample_feed, lists, clock).tap(
        transport
    )  # uses that counter on bus B
    clock.advance(minutes=90)
    assert validator.tap(transport).outcome is TapOutcome.OK
    first, _ = journal.records()
    assert journal.outcome(first.terminal_seq) == "not_debited"
    assert transport.card.balance_fen == 1000 - 200 - 200


def test_a_card_with_a_key_version_the_sam_does_not_hold_is_refused_without_a_serial(
    validator, journal, sam, issuer, tmp_path
):
    from cardio.keystore import KeyKind, KeyStore, MasterKey

    rotated = KeyStore(
        issuer.issuer_id,
        issuer.algorithm,
        tuple(
            MasterKey(k.kind, k.index, 2, k.key) if k.kind is KeyKind.PURCHASE else k
            for k in issuer.keys
        ),
    )
    transport = InProcessTransport(SoftCard.issue(rotated, "3100000000008888", balance_fen=1000))
    result = validator.tap(transport)
    assert result.outcome is TapOutcome.CARD_ERROR and "9403" in result.message
    assert sam.last_serial == 0 and journal.records() == []
    assert transport.card.balance_fen == 1000


def test_a_load_capable_validator_writes_the_top_up_before_the_fare(
    journal, sam, sample_feed, lists, list_server, clock, make_card, tmp_path
):
    from datetime import timedelta

    from terminals.kiosk import LoadKiosk
    from terminals.sam import LoadHost, Psam, load_sam_keys
    from terminals.terminal import Validator

    keys = load_sam_keys(tmp_path / "sam-keys.json")  # this SAM also holds the load key
    loader = LoadKiosk(journal, LoadHost(keys), sam.serials, lists, clock=clock)
    bus = Validator(
        journal, Psam(sam), sample_feed, lists, "1", "old_town", clock=clock, loader=loader
    )
    transport = make_card(balance_fen=50)  # too little for a 2.00 fare
    card_no = transport.card.card_no
    expires = (clock.now + timedelta(days=30)).isoformat()
    lists.apply(
        list_server.delta(
            "action",
            0,
            3,
            [{"load_id": "L-77", "card_no": card_no, "amount_fen": 3000, "expires_at": expires}],
            [],
            full=True,
        )
    )
    result = bus.tap(transport)
    assert result.outcome is TapOutcome.OK and "(loaded 30.00)" in result.message
    assert transport.card.balance_fen == 50 + 3000 - 200
    load, ride = journal.records()
    assert (load.kind.value, load.terminal_seq, load.load_id) == ("load", 1, "L-77")
    assert (ride.kind.value, ride.terminal_seq, ride.action_list_version) == ("purchase", 2, 3)
    clock.advance(hours=2)
    again = bus.tap(transport)  # the load is not delivered twice
    assert again.loaded == () and transport.card.balance_fen == 3050 - 400
    assert journal.sequence_holes() == []


def test_journaled_records_carry_what_the_back_office_needs_to_verify_the_tac(
    validator, make_card, journal, issuer, clock
):
    from cardio.crypto import verify_purchase_tac
    from cardio.keystore import KeyKind
    from cardio.records import card_number_bytes

    transport = make_card(balance_fen=1000)
    for _ in range(3):
        validator.tap(transport)
        clock.advance(minutes=45)
    dtk_master = issuer.master(KeyKind.TAC).key
    for record in journal.records():
        assert verify_purchase_tac(
            dtk_master,
            card_number_bytes(record.card_no),
            record.amount_fen,
            record.txn_type,
            bytes.fromhex(validator.terminal_id_hex),
            record.terminal_seq,
            record.occurred_at,
            bytes.fromhex(record.tac),
        )
        tampered = record.amount_fen + 1
        assert not verify_purchase_tac(
            dtk_master,
            card_number_bytes(record.card_no),
            tampered,
            record.txn_type,
            bytes.fromhex(validator.terminal_id_hex),
            record.terminal_seq,
            record.occurred_at,
            bytes.fromhex(record.tac),
        )


def test_a_foreign_card_whose_number_is_not_digits_is_refused_not_a_crash(
    validator, make_card, journal
):
    from dataclasses import replace as replace_state

    from cardio.records import PublicInfo

    transport = make_card(balance_fen=1000)
    card = transport.card
    info = PublicInfo.parse(card.state.public_info)
    foreign = replace_state(info, app_serial=bytes.fromhex("0000ABCDEF0123456789"))
    card.state = replace_state(card.state, public_info=foreign.encode())
    result = validator.tap(transport)
    assert result.outcome is TapOutcome.UNKNOWN_CARD
    assert journal.records() == [] and card.balance_fen == 1000


def test_a_cards_overdraft_is_never_used(validator, make_card, journal, sam):
    from dataclasses import replace as replace_state

    transport = make_card(balance_fen=150)
    card = transport.card
    card.state = replace_state(card.state, overdraft_limit_fen=500)  # the card would allow it
    result = validator.tap(transport)
    assert result.outcome is TapOutcome.INSUFFICIENT_BALANCE
    assert card.balance_fen == 150 and journal.records() == [] and sam.last_serial == 0
