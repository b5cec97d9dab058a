"""Every purse command against the software card through pyscard -> pcscd -> vpcd -> the card,
including the failure paths of issue 3 (wrong MAC1, insufficient funds, unknown AID, card removed
between INITIALIZE and DEBIT, tearing after DEBIT, recovery by GET TRANSACTION PROOF, 9406)."""

from __future__ import annotations

from datetime import datetime

import pytest

from cardio import crypto, testing
from cardio.crypto import TxnType
from cardio.errors import (
    CardRemoved,
    ConditionsNotSatisfied,
    FileNotFound,
    InsufficientFunds,
    KeyNotSupported,
    NoCard,
    OutOfRange,
    ProofNotAvailable,
    PurseMacInvalid,
    ReaderNotFound,
    RecordNotFound,
)
from cardio.keystore import KeyKind, KeyStore
from cardio.pcsc import PcscTransport, list_readers, wait_for_card, wait_for_removal
from cardio.purse import AID_MOHURD_EP, Purse, PurseCommands
from cardio.records import CardType, JourneyState, TransitRecord
from cardio.softcard import SoftCard

from .conftest import CARD_NO, VPCD_PORT, AttachedCard

pytestmark = pytest.mark.pcsc

TERMINAL = bytes.fromhex("000001000050")
WHEN = datetime(2026, 11, 29, 8, 15, 30)


def _tap(purse: Purse, key_store: KeyStore, amount: int, serial: int, record: bytes | None = None):
    info = purse.read_public_info()
    return testing.purchase(
        purse, testing.ClearKeys(key_store), info, amount, TERMINAL, serial, WHEN, record
    )


def test_reads_public_info_holder_balance_and_management(attached_card: AttachedCard) -> None:
    purse = attached_card.purse()
    selected = purse.select()
    assert selected.df_name == bytes.fromhex("A000000632010105")
    assert selected.public_info is not None and selected.public_info.card_no == CARD_NO
    info = purse.read_public_info()
    assert info.card_no == CARD_NO
    assert info.card_type is CardType.STUDENT
    holder = purse.read_holder()
    assert holder.name == "Han Meimei" and holder.card_type is CardType.STUDENT
    assert purse.get_balance() == 5_000
    assert purse.read_management().card_category == int(CardType.STUDENT)
    assert purse.read_log() == []


def test_ppse_lists_the_purse_aid_and_ep_df_selects(attached_card: AttachedCard) -> None:
    purse = attached_card.purse()
    assert purse.select_ppse().aids == (bytes.fromhex("A000000632010105"),)
    assert purse.select_ep_df().public_info is not None


def test_unknown_aid_is_file_not_found(attached_card: AttachedCard) -> None:
    purse = attached_card.purse()
    with pytest.raises(FileNotFound) as caught:
        purse.select(AID_MOHURD_EP)
    assert caught.value.sw == 0x6A82


def test_capp_purchase_debits_writes_the_transit_record_and_a_tac_that_verifies(
    attached_card: AttachedCard, key_store: KeyStore
) -> None:
    purse = attached_card.purse()
    purse.select()
    record = TransitRecord(
        JourneyState.BOARDED, line=17, stop=4, terminal_id=TERMINAL, tapped_at=WHEN, fare_fen=200
    )
    outcome = _tap(purse, key_store, 200, 41, record.encode())
    assert purse.get_balance() == 4_800
    assert purse.read_transit_record() == record
    info = purse.read_public_info()
    dtk_master = key_store.master(KeyKind.TAC).key
    assert crypto.verify_purchase_tac(
        dtk_master,
        info.app_serial,
        200,
        TxnType.CAPP_PURCHASE,
        TERMINAL,
        41,
        WHEN,
        outcome.debit.tac,
    )
    log = purse.read_log()
    assert [(r.counter, r.amount_fen, r.txn_type, r.terminal_id, r.occurred_at) for r in log] == [
        (1, 200, 9, TERMINAL, WHEN)
    ]
    assert attached_card.card.balance_fen == 4_800


def test_wrong_mac1_is_9302_and_leaves_the_purse_unchanged(
    attached_card: AttachedCard, key_store: KeyStore
) -> None:
    purse = attached_card.purse()
    purse.select()
    init = purse.initialize_purchase(1, 300, TERMINAL, capp=True)
    purse.update_capp_data_cache(TransitRecord(JourneyState.BOARDED, line=1).encode())
    with pytest.raises(PurseMacInvalid) as caught:
        purse.debit(7, WHEN, b"\x00\x00\x00\x00")
    assert caught.value.sw == 0x9302
    assert purse.get_balance() == 5_000
    assert purse.read_log() == []
    assert purse.read_transit_record() == TransitRecord()  # the cached record was not committed
    with pytest.raises(ProofNotAvailable):
        purse.get_transaction_proof(TxnType.CAPP_PURCHASE, init.offline_counter + 1)
    # The session is gone: a DEBIT with the right MAC1 now needs a new INITIALIZE.
    with pytest.raises(ConditionsNotSatisfied):
        purse.debit(7, WHEN, b"\x00\x00\x00\x00")


def test_insufficient_funds_is_9401(attached_card: AttachedCard) -> None:
    purse = attached_card.purse()
    purse.select()
    with pytest.raises(InsufficientFunds) as caught:
        purse.initialize_purchase(1, 5_001, TERMINAL)
    assert caught.value.sw == 0x9401
    assert purse.initialize_purchase(1, 5_000, TERMINAL).balance_fen == 5_000


def test_unknown_key_index_is_9403(attached_card: AttachedCard) -> None:
    purse = attached_card.purse()
    purse.select()
    with pytest.raises(KeyNotSupported):
        purse.initialize_purchase(9, 100, TERMINAL)


def test_load_credits_and_its_tac_verifies_and_the_limit_holds(
    attached_card: AttachedCard, key_store: KeyStore
) -> None:
    purse = attached_card.purse()
    purse.select()
    info = purse.read_public_info()
    outcome = testing.load(purse, testing.ClearKeys(key_store), info, 2_500, TERMINAL, WHEN)
    assert purse.get_balance() == 7_500
    assert crypto.verify_load_tac(
        key_store.master(KeyKind.TAC).key,
        info.app_serial,
        7_500,
        0,
        2_500,
        TxnType.EP_LOAD,
        TERMINAL,
        WHEN,
        outcome.tac,
    )
    assert purse.get_transaction_proof(TxnType.EP_LOAD, 1).tac == outcome.tac
    with pytest.raises(OutOfRange):
        purse.initialize_load(1, 100_000 - 7_500 + 1, TERMINAL)


def test_wrong_load_mac2_is_9302_and_credits_nothing(attached_card: AttachedCard) -> None:
    purse = attached_card.purse()
    purse.select()
    purse.initialize_load(1, 1_000, TERMINAL)
    with pytest.raises(PurseMacInvalid):
        purse.credit_load(WHEN, b"\x12\x34\x56\x78")
    assert purse.get_balance() == 5_000
    with pytest.raises(ProofNotAvailable):
        purse.get_transaction_proof(TxnType.EP_LOAD, 1)


def test_card_removed_between_initialize_and_debit_debits_nothing(
    attached_card: AttachedCard, key_store: KeyStore
) -> None:
    purse = attached_card.purse()
    purse.select()
    init = purse.initialize_purchase(1, 200, TERMINAL)
    attached_card.pull()
    with pytest.raises(CardRemoved):
        purse.debit(3, WHEN, bytes(4))
    attached_card.insert()
    again = attached_card.purse()
    again.select()
    assert again.get_balance() == 5_000
    with pytest.raises(ProofNotAvailable) as caught:
        again.get_transaction_proof(TxnType.EP_PURCHASE, init.offline_counter + 1)
    assert caught.value.sw == 0x9406
    with pytest.raises(ConditionsNotSatisfied):  # power was lost: the INITIALIZE is gone
        again.debit(3, WHEN, bytes(4))
    assert again.get_balance() == 5_000


def test_tear_after_debit_is_recovered_by_get_transaction_proof_without_a_second_debit(
    attached_card: AttachedCard, key_store: KeyStore, tmp_path
) -> None:
    card_file = tmp_path / "CARD.json"
    bridge = attached_card.bridge

    def persist_then_leave() -> None:  # the card saves its state, then leaves before answering
        attached_card.card.save(card_file)
        bridge.pull()

    bridge.on_change = persist_then_leave
    purse = attached_card.purse()
    purse.select()
    info = purse.read_public_info()
    keys = testing.ClearKeys(key_store)
    init = purse.initialize_purchase(1, 250, TERMINAL, capp=True)
    sespk = keys.sespk(info.app_serial, init, 99)
    mac1 = crypto.purchase_mac1(sespk, 250, TxnType.CAPP_PURCHASE, TERMINAL, WHEN)
    purse.update_capp_data_cache(TransitRecord(JourneyState.BOARDED, line=5).encode())
    with pytest.raises(CardRemoved):
        purse.debit(99, WHEN, mac1)  # torn: the terminal never got TAC / MAC2
    attached_card.thread.join(5.0)
    wait_for_removal(attached_card.reader, 5.0)
    # The state the card persisted before answering survives the pull.
    assert SoftCard.load(card_file).balance_fen == 4_750
    attached_card.insert()
    again = attached_card.purse()
    again.select()
    # Re-tap: the counter advanced by one and the balance dropped: the debit happened.
    assert again.get_balance() == 4_750
    proof = again.get_transaction_proof(TxnType.CAPP_PURCHASE, init.offline_counter + 1)
    assert proof.mac == crypto.purchase_mac2(sespk, 250)
    assert crypto.verify_purchase_tac(
        key_store.master(KeyKind.TAC).key,
        info.app_serial,
        250,
        TxnType.CAPP_PURCHASE,
        TERMINAL,
        99,
        WHEN,
        proof.tac,
    )
    assert again.read_transit_record().line == 5
    assert again.get_balance() == 4_750  # recovered once, not debited twice
    assert len(again.read_log()) == 1


def test_get_transaction_proof_for_a_debit_that_never_happened_is_9406(
    attached_card: AttachedCard,
) -> None:
    purse = attached_card.purse()
    purse.select()
    with pytest.raises(ProofNotAvailable) as caught:
        purse.get_transaction_proof(TxnType.EP_PURCHASE, 1)
    assert caught.value.sw == 0x9406


def test_log_holds_ten_records_most_recent_first(
    attached_card: AttachedCard, key_store: KeyStore
) -> None:
    purse = attached_card.purse()
    purse.select()
    for n in range(12):
        _tap(purse, key_store, n + 1, 1000 + n)
    log = purse.read_log()
    assert [r.amount_fen for r in log] == list(range(12, 2, -1))
    assert [r.counter for r in log] == list(range(12, 2, -1))
    with pytest.raises(RecordNotFound):
        purse.send(PurseCommands.read_record(0x18, 11, 23)).check()


def test_two_handles_share_one_card_with_leave_card(attached_card: AttachedCard) -> None:
    first = attached_card.purse()
    second = attached_card.purse()
    first.select()
    first.transport.close()
    second.select()  # not reset by the first handle's release
    assert second.get_balance() == 5_000


def test_unknown_reader_and_empty_reader_are_typed(pcscd_reader: str) -> None:
    assert pcscd_reader in list_readers()
    with pytest.raises(ReaderNotFound):
        PcscTransport.open("No Such Reader 99")
    with pytest.raises(ReaderNotFound):
        wait_for_card("No Such Reader 99", 0.1)
    with pytest.raises(NoCard):
        PcscTransport.open(pcscd_reader)
    with pytest.raises(NoCard):
        wait_for_card(pcscd_reader, 0.2)


def test_get_challenge_and_trip_records_through_pcscd(
    attached_card: AttachedCard, key_store: KeyStore
) -> None:
    from cardio.records import TripRecord

    purse = attached_card.purse()
    purse.select()
    one, two = purse.get_challenge(), purse.get_challenge(8)
    assert len(one) == 4 and len(two) == 8 and one != two[:4]
    info = purse.read_public_info()
    keys = testing.ClearKeys(key_store)
    trip = TripRecord(6, bytes(8), 2, bytes(7), 100, 4_900, WHEN, b"\x31\x00", bytes(8))
    init = purse.initialize_purchase(1, 100, TERMINAL, capp=True)
    sespk = keys.sespk(info.app_serial, init, 2)
    purse.update_capp_data_cache(trip.encode(), sfi=0x1E, record_id=0)
    purse.debit(2, WHEN, crypto.purchase_mac1(sespk, 100, TxnType.CAPP_PURCHASE, TERMINAL, WHEN))
    assert purse.read_trips() == [trip]
    assert purse.get_balance() == 4_900


def test_random_loads_and_purchases_through_pcscd_keep_the_purse_consistent(
    attached_card: AttachedCard, key_store: KeyStore
) -> None:
    from hypothesis import HealthCheck, settings
    from hypothesis.stateful import run_state_machine_as_test

    from .test_softcard import PurseMachine

    purse = attached_card.purse()

    class PcscPurseMachine(PurseMachine):
        def _plug(self, card: SoftCard) -> Purse:
            attached_card.bridge.card = card  # a new card in the same reader
            purse.transport.reset()
            return purse

        def _re_tap(self) -> None:
            purse.transport.reset()  # pcscd resets the card through vpcd: its session is gone

    PcscPurseMachine.key_store = key_store
    run_state_machine_as_test(
        PcscPurseMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_a_warm_reset_ends_the_cards_session(attached_card: AttachedCard) -> None:
    purse = attached_card.purse()
    purse.select()
    purse.initialize_purchase(1, 100, TERMINAL)
    purse.transport.reset()
    purse.select()
    with pytest.raises(ConditionsNotSatisfied):
        purse.debit(1, WHEN, bytes(4))
    assert purse.get_balance() == 5_000


def test_find_card_returns_the_reader_holding_one_and_can_wait_for_it(
    pcscd_reader: str, soft_card: SoftCard
) -> None:
    import threading

    from cardio.pcsc import find_card, readers_with_card

    assert readers_with_card()[pcscd_reader] is False
    attached = AttachedCard(soft_card, pcscd_reader, VPCD_PORT)
    found: list[str] = []
    # Other engineers' tests may put cards in the other reader meanwhile: wait on ours only.
    waiter = threading.Thread(
        target=lambda: found.append(find_card(timeout_s=10.0, readers=[pcscd_reader]))
    )
    waiter.start()
    try:
        attached.insert()
        waiter.join(10.0)
        assert found == [pcscd_reader]
        assert readers_with_card()[pcscd_reader] is True
        assert find_card() == pcscd_reader  # first in pcscd's order
    finally:
        attached.close()
    with pytest.raises(NoCard):
        find_card(readers=[pcscd_reader])
    with pytest.raises(ReaderNotFound):
        find_card(readers=["No Such Reader 99"])
