"""The software card in-process: what a real card enforces, persistence, and a stateful model test."""

from __future__ import annotations

import json
import stat
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from cardio import crypto, testing
from cardio.apdu import CommandApdu
from cardio.crypto import TxnType
from cardio.errors import (
    CardFileError,
    CardRemoved,
    ConditionsNotSatisfied,
    InsufficientFunds,
    OutOfRange,
    ProofNotAvailable,
    PurseMacInvalid,
    WrongData,
)
from cardio.inproc import InProcessTransport
from cardio.keystore import KeyKind, KeyStore
from cardio.purse import Purse, PurseCommands
from cardio.records import CardType, JourneyState, TransitRecord, TripRecord
from cardio.softcard import SOFTCARD_ATR, SoftCard

TERMINAL = bytes.fromhex("000002000077")
WHEN = datetime(2026, 11, 29, 18, 5, 0)


def _purse(card: SoftCard) -> tuple[Purse, InProcessTransport]:
    transport = InProcessTransport(card)
    purse = Purse(transport)
    purse.select()
    return purse, transport


def test_issue_personalises_files_keys_and_balance(key_store: KeyStore) -> None:
    card = SoftCard.issue(
        key_store,
        "3100000000000007",
        CardType.SENIOR,
        "王芳",
        balance_fen=1234,
        valid_from=date(2026, 1, 1),
        valid_until=date(2031, 12, 31),
    )
    purse, _ = _purse(card)
    info = purse.read_public_info()
    assert info.card_no == "3100000000000007" == card.card_no
    assert info.card_type is CardType.SENIOR
    assert info.issuer_id == key_store.issuer_id
    assert info.is_valid_on(date(2026, 6, 1)) and not info.is_valid_on(date(2032, 1, 1))
    holder = purse.read_holder()
    assert holder.name == "王芳" and holder.card_type is CardType.SENIOR
    assert purse.get_balance() == 1234
    serial = info.app_serial
    assert card.state.keys.dtk == crypto.diversify_key(key_store.master(KeyKind.TAC).key, serial)
    assert "3100000000000007" not in repr(card)


@pytest.mark.parametrize(
    "card_no", ["310000000000000", "31000000000000AB", "３１００００００００００００００７"]
)
def test_issue_refuses_a_card_number_that_is_not_16_digits(
    key_store: KeyStore, card_no: str
) -> None:
    with pytest.raises(CardFileError, match="16 decimal digits"):
        SoftCard.issue(key_store, card_no)


def test_issue_refuses_an_opening_balance_above_the_limit(key_store: KeyStore) -> None:
    with pytest.raises(CardFileError):
        SoftCard.issue(key_store, "3100000000000001", balance_fen=100_001)


def test_debit_without_initialize_is_6985(soft_card: SoftCard) -> None:
    purse, _ = _purse(soft_card)
    with pytest.raises(ConditionsNotSatisfied):
        purse.debit(1, WHEN, bytes(4))


def test_capp_cache_needs_a_capp_initialize(soft_card: SoftCard) -> None:
    purse, _ = _purse(soft_card)
    purse.initialize_purchase(1, 10, TERMINAL, capp=False)
    with pytest.raises(ConditionsNotSatisfied):
        purse.update_capp_data_cache(TransitRecord().encode())


def test_a_second_initialize_abandons_the_first(soft_card: SoftCard, key_store: KeyStore) -> None:
    purse, _ = _purse(soft_card)
    info = purse.read_public_info()
    keys = testing.ClearKeys(key_store)
    first = purse.initialize_purchase(1, 10, TERMINAL)
    sespk = keys.sespk(info.app_serial, first, 5)
    mac1 = crypto.purchase_mac1(sespk, 10, TxnType.EP_PURCHASE, TERMINAL, WHEN)
    purse.initialize_purchase(1, 10, TERMINAL)  # new random: the old MAC1 no longer fits
    with pytest.raises(PurseMacInvalid):
        purse.debit(5, WHEN, mac1)
    assert purse.get_balance() == 5_000


def test_mac1_for_another_amount_or_terminal_serial_is_refused(
    soft_card: SoftCard, key_store: KeyStore
) -> None:
    purse, _ = _purse(soft_card)
    info = purse.read_public_info()
    keys = testing.ClearKeys(key_store)
    init = purse.initialize_purchase(1, 100, TERMINAL)
    sespk = keys.sespk(info.app_serial, init, 8)
    forged = crypto.purchase_mac1(sespk, 1, TxnType.EP_PURCHASE, TERMINAL, WHEN)  # MAC1 for 0.01
    with pytest.raises(PurseMacInvalid):
        purse.debit(8, WHEN, forged)
    assert purse.get_balance() == 5_000


def test_debit_with_a_date_that_is_not_bcd_is_6a80(soft_card: SoftCard) -> None:
    purse, _ = _purse(soft_card)
    purse.initialize_purchase(1, 100, TERMINAL)
    data = (1).to_bytes(4, "big") + bytes.fromhex("2026112A000000") + bytes(4)
    with pytest.raises(WrongData):
        purse.send(CommandApdu(0x80, 0x54, 0x01, 0x00, data, le=8)).check()
    assert purse.get_balance() == 5_000


def test_the_balance_never_goes_above_the_limit(key_store: KeyStore) -> None:
    card = SoftCard.issue(key_store, "3100000000000002", balance_fen=99_000)
    purse, _ = _purse(card)
    info = purse.read_public_info()
    with pytest.raises(OutOfRange):
        purse.initialize_load(1, 1_001, TERMINAL)
    testing.load(purse, testing.ClearKeys(key_store), info, 1_000, TERMINAL, WHEN)
    assert purse.get_balance() == 100_000


def test_counters_at_their_maximum_refuse_new_transactions(soft_card: SoftCard) -> None:
    soft_card.state.offline_counter = 0xFFFF
    soft_card.state.online_counter = 0xFFFF
    purse, _ = _purse(soft_card)
    with pytest.raises(OutOfRange):
        purse.initialize_purchase(1, 1, TERMINAL)
    with pytest.raises(OutOfRange):
        purse.initialize_load(1, 1, TERMINAL)


def test_in_process_tear_after_debit_and_proof(soft_card: SoftCard, key_store: KeyStore) -> None:
    purse, transport = _purse(soft_card)
    info = purse.read_public_info()
    keys = testing.ClearKeys(key_store)
    init = purse.initialize_purchase(1, 120, TERMINAL)
    sespk = keys.sespk(info.app_serial, init, 31)
    mac1 = crypto.purchase_mac1(sespk, 120, TxnType.EP_PURCHASE, TERMINAL, WHEN)
    transport.tear_next(0x54)
    with pytest.raises(CardRemoved):
        purse.debit(31, WHEN, mac1)
    with pytest.raises(CardRemoved):
        purse.get_balance()
    transport.insert()
    purse.select()
    assert purse.get_balance() == 4_880
    proof = purse.get_transaction_proof(TxnType.EP_PURCHASE, init.offline_counter + 1)
    assert proof.mac == crypto.purchase_mac2(sespk, 120)
    with pytest.raises(ProofNotAvailable):  # the right counter but the wrong type
        purse.get_transaction_proof(TxnType.CAPP_PURCHASE, init.offline_counter + 1)


def test_trip_records_in_001e_are_cyclic_and_committed_with_the_debit(
    soft_card: SoftCard, key_store: KeyStore
) -> None:
    purse, _ = _purse(soft_card)
    info = purse.read_public_info()
    keys = testing.ClearKeys(key_store)
    trip = TripRecord(6, bytes(8), 2, bytes(7), 100, 4_900, WHEN, b"\x31\x00", bytes(8))
    init = purse.initialize_purchase(1, 100, TERMINAL, capp=True)
    sespk = keys.sespk(info.app_serial, init, 1)
    purse.update_capp_data_cache(trip.encode(), sfi=0x1E, record_id=0)
    purse.update_capp_data_cache(TransitRecord(JourneyState.ALIGHTED, line=3).encode())
    purse.debit(1, WHEN, crypto.purchase_mac1(sespk, 100, TxnType.CAPP_PURCHASE, TERMINAL, WHEN))
    assert purse.read_trips() == [trip]
    assert purse.read_transit_record().state is JourneyState.ALIGHTED


def test_card_file_round_trips_and_is_0600(
    tmp_path: Path, soft_card: SoftCard, key_store: KeyStore
) -> None:
    purse, _ = _purse(soft_card)
    info = purse.read_public_info()
    testing.purchase(
        purse, testing.ClearKeys(key_store), info, 70, TERMINAL, 3, WHEN, TransitRecord().encode()
    )
    path = tmp_path / "CARD.json"
    soft_card.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = SoftCard.load(path)
    assert loaded.to_json() == soft_card.to_json()
    again, _ = _purse(loaded)
    assert again.get_balance() == 4_930
    assert again.get_transaction_proof(TxnType.CAPP_PURCHASE, 1).mac is not None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.update(format="x"),
        lambda b: b["purse"].update(balance_fen=-1),
        lambda b: b["purse"].update(balance_fen=10**9),
        lambda b: b["purse"].update(offline_counter=70000),
        lambda b: b["keys"].update(dtk="00"),
        lambda b: b["files"].update({"0015": "zz"}),
        lambda b: b.pop("keys"),
        lambda b: b.update(
            last_purchase={"txn_type": 6, "counter_after": 1, "mac": "00", "tac": "00"}
        ),
    ],
)
def test_malformed_card_file_is_card_file_error(
    tmp_path: Path, soft_card: SoftCard, mutate
) -> None:
    body = json.loads(soft_card.to_json())
    mutate(body)
    with pytest.raises(CardFileError):
        SoftCard.from_json(json.dumps(body))


def test_missing_card_file_is_card_file_error(tmp_path: Path) -> None:
    with pytest.raises(CardFileError):
        SoftCard.load(tmp_path / "none.json")


def test_atr_and_unknown_instructions(soft_card: SoftCard) -> None:
    assert InProcessTransport(soft_card).atr == SOFTCARD_ATR
    assert soft_card.process(bytes.fromhex("80FF000000")) == bytes.fromhex("6D00")
    assert soft_card.process(bytes.fromhex("A0A4000000")) == bytes.fromhex("6E00")
    assert soft_card.process(bytes.fromhex("00A4")) == bytes.fromhex("6700")
    # Before SELECT the purse files are not reachable.
    assert soft_card.process(bytes.fromhex("805C000204")) == bytes.fromhex("6A82")


class PurseMachine(RuleBasedStateMachine):
    """Random sequences of loads, purchases, refused MAC1s and tears against a model of the purse."""

    key_store: KeyStore

    @initialize(opening=st.integers(0, 20_000))
    def issue(self, opening: int) -> None:
        self.card = SoftCard.issue(self.key_store, "3100000000009999", balance_fen=opening)
        self.purse = self._plug(self.card)
        self.info = self.purse.select().public_info
        self.keys = testing.ClearKeys(self.key_store)
        self.opening = opening
        self.loads = 0
        self.purchases = 0
        self.last_offline = 0
        self.last_online = 0
        self.terminal_serial = 0
        self.when = WHEN
        self.dtk_master = self.key_store.master(KeyKind.TAC).key

    def _tick(self) -> None:
        self.terminal_serial += 1
        self.when += timedelta(seconds=37)

    @rule(amount=st.integers(0, 3_000), capp=st.booleans())
    def purchase(self, amount: int, capp: bool) -> None:
        self._tick()
        balance = self.opening + self.loads - self.purchases
        record = TransitRecord(JourneyState.BOARDED, line=amount).encode() if capp else None
        if amount > balance:
            with pytest.raises(InsufficientFunds):
                self.purse.initialize_purchase(1, amount, TERMINAL, capp=capp)
            return
        outcome = testing.purchase(
            self.purse,
            self.keys,
            self.info,
            amount,
            TERMINAL,
            self.terminal_serial,
            self.when,
            record,
        )
        self.purchases += amount
        assert outcome.init.offline_counter == self.last_offline
        self.last_offline += 1
        txn_type = TxnType.CAPP_PURCHASE if capp else TxnType.EP_PURCHASE
        args = (self.info.app_serial, amount, txn_type, TERMINAL, self.terminal_serial, self.when)
        assert crypto.verify_purchase_tac(self.dtk_master, *args, outcome.debit.tac)
        other = bytes(b ^ 0x02 for b in self.dtk_master)  # differs in a key bit of every byte
        assert not crypto.verify_purchase_tac(other, *args, outcome.debit.tac)

    @rule(amount=st.integers(1, 5_000))
    def load(self, amount: int) -> None:
        self._tick()
        balance = self.opening + self.loads - self.purchases
        if balance + amount > 100_000:
            with pytest.raises(OutOfRange):
                self.purse.initialize_load(1, amount, TERMINAL)
            return
        outcome = testing.load(self.purse, self.keys, self.info, amount, TERMINAL, self.when)
        self.loads += amount
        assert outcome.online_counter == self.last_online
        self.last_online += 1
        assert crypto.verify_load_tac(
            self.dtk_master,
            self.info.app_serial,
            outcome.balance_after_fen,
            outcome.online_counter,
            amount,
            TxnType.EP_LOAD,
            TERMINAL,
            self.when,
            outcome.tac,
        )

    @rule(amount=st.integers(0, 100), bad=st.binary(min_size=4, max_size=4))
    def refused_mac1(self, amount: int, bad: bytes) -> None:
        balance = self.opening + self.loads - self.purchases
        if amount > balance:
            return
        self._tick()
        self.purse.initialize_purchase(1, amount, TERMINAL)
        try:
            self.purse.debit(self.terminal_serial, self.when, bad)
        except PurseMacInvalid:
            return
        # A random 4-byte MAC1 can be right (2^-32): then the debit is real.
        self.purchases += amount
        self.last_offline += 1

    def _plug(self, card: SoftCard) -> Purse:
        """Put the card in a reader; the pcscd variant overrides this."""
        self.transport = InProcessTransport(card)
        return Purse(self.transport)

    def _re_tap(self) -> None:
        self.transport.remove()
        self.transport.insert()

    @precondition(lambda self: self.last_offline > 0)
    @rule()
    def re_tap_reads_the_last_proof(self) -> None:
        self._re_tap()
        self.purse.select()
        last = self.purse.read_log(1)[0]
        if last.txn_type in (TxnType.EP_PURCHASE, TxnType.CAPP_PURCHASE):
            proof = self.purse.get_transaction_proof(last.txn_type, self.last_offline)
            assert len(proof.tac) == 4

    @invariant()
    def balance_is_opening_plus_loads_minus_purchases(self) -> None:
        assert self.card.balance_fen == self.opening + self.loads - self.purchases
        assert 0 <= self.card.balance_fen <= 100_000
        assert self.card.offline_counter == self.last_offline
        assert self.card.online_counter == self.last_online

    @invariant()
    def the_card_file_round_trips(self) -> None:
        text = self.card.to_json()
        assert SoftCard.from_json(text).to_json() == text


@pytest.fixture
def purse_machine(key_store: KeyStore) -> type[PurseMachine]:
    PurseMachine.key_store = key_store
    return PurseMachine


def test_random_loads_and_purchases_keep_the_purse_consistent(
    purse_machine: type[PurseMachine],
) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        purse_machine,
        settings=settings(
            max_examples=60,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_an_sm4_card_purchases_and_loads_with_onecards_own_profile(tmp_path: Path) -> None:
    from cardio.crypto import Algorithm
    from cardio.keystore import create_key_store

    store = create_key_store(tmp_path / "sm4.json", algorithm=Algorithm.SM4)
    card = SoftCard.issue(store, "3100000000000404", balance_fen=1_000)
    purse, _ = _purse(card)
    info = purse.read_public_info()
    keys = testing.ClearKeys(store)
    outcome = testing.purchase(purse, keys, info, 150, TERMINAL, 12, WHEN, TransitRecord().encode())
    assert outcome.init.algorithm is Algorithm.SM4
    master_tac = store.master(KeyKind.TAC).key
    args = (info.app_serial, 150, TxnType.CAPP_PURCHASE, TERMINAL, 12, WHEN, outcome.debit.tac)
    assert crypto.verify_purchase_tac(master_tac, *args, Algorithm.SM4)
    assert not crypto.verify_purchase_tac(master_tac, *args)  # not a 3DES TAC
    loaded = testing.load(purse, keys, info, 500, TERMINAL, WHEN)
    assert purse.get_balance() == 1_350 == loaded.balance_after_fen
    assert SoftCard.from_json(card.to_json()).state.keys.algorithm is Algorithm.SM4


PURSE_HEADERS = [
    bytes.fromhex(x)
    for x in (
        "80500102",
        "80500302",
        "80500002",
        "80540100",
        "80520000",
        "80DC02D0",
        "80DC00F0",
        "805A0006",
        "805A0009",
        "805A0002",
        "805C0002",
        "00B2011C",
        "00B201C4",
        "00B09500",
        "00A40400",
        "00840000",
        "04D69600",
        "00D69600",
    )
]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    apdus=st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.builds(
                lambda header, body: header + bytes([len(body)]) + body,
                st.sampled_from(PURSE_HEADERS),
                st.binary(max_size=140),
            ),
        ),
        max_size=30,
    )
)
def test_random_apdus_never_crash_the_card_or_move_money(
    soft_card: SoftCard, apdus: list[bytes]
) -> None:
    card = SoftCard.from_json(soft_card.to_json())
    card.process(bytes.fromhex("00A4040008A00000063201010500"))
    for apdu in apdus:
        response = card.process(apdu)
        assert len(response) >= 2
    # Without a valid MAC1/MAC2 nothing may change (a random 4-byte MAC passes with p = 2^-32).
    assert card.balance_fen == 5_000
    assert (card.offline_counter, card.online_counter, card.state.log) == (0, 0, [])
    assert card.state_version == 0


def test_holder_update_under_line_protection(soft_card: SoftCard, key_store: KeyStore) -> None:
    from cardio.errors import (
        RandomNotAvailable,
        SecureMessagingMacInvalid,
        SecureMessagingMissing,
        SecurityStatusNotSatisfied,
    )
    from cardio.records import HolderInfo

    purse, _ = _purse(soft_card)
    info = purse.read_public_info()
    keys = testing.ClearKeys(key_store)
    new_holder = HolderInfo.build(CardType.SENIOR, "Han Meimei", "110101194001010011").encode()
    purse.update_binary_secure(0x16, 0, new_holder, keys.line_protection(info.app_serial))
    holder = purse.read_holder()
    assert holder.card_type is CardType.SENIOR and holder.id_number == "110101194001010011"
    # A wrong MAC is the secure-messaging error 6988, never the purse's 9302; nothing changes.
    with pytest.raises(SecureMessagingMacInvalid) as caught:
        purse.update_binary_secure(0x16, 2, b"Mallory", lambda challenge, apdu: bytes(4))
    assert caught.value.sw == 0x6988
    assert purse.read_holder().name == "Han Meimei"
    # Another card's maintenance key does not work either.
    other = keys.line_protection(bytes.fromhex("00003100000000000099"))
    with pytest.raises(SecureMessagingMacInvalid):
        purse.update_binary_secure(0x16, 2, b"Mallory", other)
    # A MAC computed over an old challenge is refused: each challenge serves one command.
    mac_for = keys.line_protection(info.app_serial)
    challenge = purse.get_challenge()
    header = bytes((0x04, 0xD6, 0x96, 0x02, 7 + 4))
    stale = mac_for(challenge, header + b"Mallory")
    purse.get_challenge()
    with pytest.raises(SecureMessagingMacInvalid):
        purse.send(PurseCommands.update_binary_secure(0x16, 2, b"Mallory", stale)).check()
    with pytest.raises(RandomNotAvailable):  # no challenge left
        purse.send(PurseCommands.update_binary_secure(0x16, 2, b"Mallory", stale)).check()
    with pytest.raises(SecurityStatusNotSatisfied):  # in clear
        purse.send(CommandApdu(0x00, 0xD6, 0x96, 0x02, b"Mallory")).check()
    with pytest.raises(SecureMessagingMissing):
        purse.get_challenge()
        purse.send(CommandApdu(0x04, 0xD6, 0x96, 0x02, b"abc")).check()
    assert purse.read_holder().name == "Han Meimei"


def test_a_debit_answered_6cxx_for_a_short_le_did_not_happen_and_the_resend_works(
    soft_card: SoftCard, key_store: KeyStore
) -> None:
    """A terminal told 6C08 resends the same DEBIT with Le 08: the money moves once, on the resend."""
    purse, transport = _purse(soft_card)
    info = purse.read_public_info()
    init = purse.initialize_purchase(1, 100, TERMINAL)
    sespk = testing.ClearKeys(key_store).sespk(info.app_serial, init, 9)
    mac1 = crypto.purchase_mac1(sespk, 100, TxnType.EP_PURCHASE, TERMINAL, WHEN)
    data = (9).to_bytes(4, "big") + crypto.bcd_date_time(WHEN) + mac1
    short = CommandApdu(0x80, 0x54, 0x01, 0x00, data, le=4).encode()
    assert transport.transmit(short) == b"\x6c\x08"
    assert soft_card.balance_fen == 5_000 and soft_card.offline_counter == 0
    answer = transport.transmit(CommandApdu(0x80, 0x54, 0x01, 0x00, data, le=8).encode())
    assert answer[-2:] == b"\x90\x00" and answer[4:8] == crypto.purchase_mac2(sespk, 100)
    assert soft_card.balance_fen == 4_900 and soft_card.offline_counter == 1


def test_read_record_p2_101_reads_every_log_record_from_p1(
    soft_card: SoftCard, key_store: KeyStore
) -> None:
    """`00 B2 01 C5 00` (sinpolib) answers the whole log, newest first; from P1 = 2 one fewer."""
    purse, transport = _purse(soft_card)
    info = purse.read_public_info()
    keys = testing.ClearKeys(key_store)
    for serial, amount in enumerate((100, 200, 300), start=1):
        testing.purchase(purse, keys, info, amount, TERMINAL, serial, WHEN)
    every = transport.transmit(bytes.fromhex("00B201C500"))
    assert every[-2:] == b"\x90\x00" and len(every) == 3 * 23 + 2
    one_by_one = purse.read_log()
    assert [r.amount_fen for r in one_by_one] == [300, 200, 100]
    assert every[:-2] == b"".join(
        transport.transmit(bytes([0, 0xB2, n, 0xC4, 0]))[:-2] for n in (1, 2, 3)
    )
    assert transport.transmit(bytes.fromhex("00B202C500"))[:-2] == every[23:-2]
    assert transport.transmit(bytes.fromhex("00B204C500")) == b"\x6a\x83"


@pytest.mark.parametrize("p1", [0x00, 0x01, 0x02, 0x03])
def test_get_balance_answers_for_p1_0_to_3_as_t_union_readers_ask(
    soft_card: SoftCard, p1: int
) -> None:
    _, transport = _purse(soft_card)
    assert (
        transport.transmit(bytes((0x80, 0x5C, p1, 0x02, 0x04)))
        == (5_000).to_bytes(4, "big") + b"\x90\x00"
    )


def test_an_overdraft_limit_is_reported_but_never_lent(key_store: KeyStore) -> None:
    """A card file with an overdraft limit still refuses 9401 past its balance (it used to go
    negative, and the next GET BALANCE crashed the card)."""
    body = json.loads(SoftCard.issue(key_store, "3100000000000003", balance_fen=100).to_json())
    body["purse"]["overdraft_limit_fen"] = 500
    card = SoftCard.from_json(json.dumps(body))
    purse, _ = _purse(card)
    info = purse.read_public_info()
    assert purse.initialize_purchase(1, 100, TERMINAL).overdraft_limit_fen == 500
    with pytest.raises(InsufficientFunds):
        testing.purchase(purse, testing.ClearKeys(key_store), info, 101, TERMINAL, 1, WHEN)
    testing.purchase(purse, testing.ClearKeys(key_store), info, 100, TERMINAL, 2, WHEN)
    assert purse.get_balance() == 0 == card.balance_fen
    assert SoftCard.from_json(card.to_json()).balance_fen == 0


def test_select_with_p2_0c_selects_without_an_fci(soft_card: SoftCard) -> None:
    transport = InProcessTransport(soft_card)
    assert transport.transmit(bytes.fromhex("00A4000C021001")) == b"\x90\x00"
    assert (
        transport.transmit(bytes.fromhex("805C000204")) == (5_000).to_bytes(4, "big") + b"\x90\x00"
    )
    assert transport.transmit(bytes.fromhex("00A4040C08A000000632010105"))[-2:] == b"\x90\x00"
    assert transport.transmit(bytes.fromhex("00A4040008A00000063201010500"))[:1] == b"\x6f"
