"""The terminal side against the real-card traces of PURSE.md, byte for byte.

A scripted transport plays the card: it insists on the exact command bytes of the trace and answers
the trace's response, so any difference in what `Purse` sends fails the test.
"""

from __future__ import annotations

from datetime import date

import pytest

from cardio import crypto
from cardio.crypto import Algorithm, TxnType
from cardio.purse import AID_MOHURD_EP, Purse

h = bytes.fromhex


class ScriptedCard:
    """A transport that replays (expected command, response) pairs in order."""

    def __init__(self, script: list[tuple[str, str]]) -> None:
        self.script = [(h(c.replace(" ", "")), h(r.replace(" ", ""))) for c, r in script]

    def transmit(self, apdu: bytes) -> bytes:
        assert self.script, f"unexpected command {apdu.hex().upper()}"
        expected, response = self.script.pop(0)
        assert apdu.hex().upper() == expected.hex().upper()
        return response

    def close(self) -> None:
        pass

    def done(self) -> bool:
        return not self.script


CHANGSHA_0015 = "0731410000000000 01 01 00004100000089999985 20150605 20380808 0000"


def test_select_of_a_changsha_card_carries_0015_in_the_fci() -> None:
    fci = (
        "6F32 8409A00000000386980701 A525 9F080101 9F0C1E" + CHANGSHA_0015.replace(" ", "") + "9000"
    )
    card = ScriptedCard([("00A4040009A0000000038698070100", fci)])
    selected = Purse(card).select(AID_MOHURD_EP)
    info = selected.public_info
    assert selected.df_name == AID_MOHURD_EP
    assert info is not None
    assert info.issuer_id == h("0731410000000000")
    assert info.app_serial == h("00004100000089999985")
    assert info.card_no == "4100000089999985"
    assert info.valid_from == date(2015, 6, 5) and info.valid_until == date(2038, 8, 8)
    assert info.card_type is None  # 00: not one of onecard's codes
    assert card.done()


def test_read_binary_0015_is_00b095001e() -> None:
    card = ScriptedCard([("00B095001E", CHANGSHA_0015 + "9000")])
    assert Purse(card).read_public_info().card_no == "4100000089999985"


def test_real_card_load_trace_byte_for_byte() -> None:
    """t2_load: INITIALIZE FOR LOAD then CREDIT FOR LOAD (PURSE.md §2.3, vector 3)."""
    card = ScriptedCard(
        [
            ("805C000204", "00000000 9000"),
            (
                "8050000 20B 01 00001C37 000001000050 10".replace(" ", ""),
                "00000000 0000 01 00 CDEF4F20 06B1BEF5 9000",
            ),
            ("80520000 0B 20140825 103100 0641DCD8 04", "ED0F8755 9000"),
            ("805C000204", "00001C37 9000"),
        ]
    )
    purse = Purse(card)
    assert purse.get_balance() == 0
    init = purse.initialize_load(0x01, 0x1C37, h("000001000050"))
    assert (init.balance_fen, init.online_counter, init.key_version, init.algorithm) == (
        0,
        0,
        1,
        Algorithm.TDES,
    )
    assert init.card_random == h("CDEF4F20") and init.mac1 == h("06B1BEF5")
    # The host checks MAC1 and computes MAC2 with the card's DLK (vector 3 keys).
    seslk = crypto.load_session_key(
        h("374598B5C0B0EAE1E1D06609AC5BB369"), init.card_random, init.online_counter
    )
    assert (
        crypto.load_mac1(seslk, init.balance_fen, 0x1C37, TxnType.EP_LOAD, h("000001000050"))
        == init.mac1
    )
    mac2 = crypto.load_mac2(seslk, 0x1C37, TxnType.EP_LOAD, h("000001000050"), h("20140825103100"))
    tac = purse.credit_load(h("20140825103100"), mac2)
    assert tac == h("ED0F8755")
    dtk = h("CAA6025290114BFCC3C9043F70F7A07A")
    assert crypto.load_tac(dtk, 0x1C37, 0, 0x1C37, 2, h("000001000050"), h("20140825103100")) == tac
    assert purse.get_balance() == 0x1C37
    assert card.done()


def test_real_card_capp_purchase_trace_byte_for_byte() -> None:
    """t7_purchase: INITIALIZE FOR CAPP PURCHASE then DEBIT FOR CAPP PURCHASE (vector 4)."""
    card = ScriptedCard(
        [
            ("80500302 0B 01 00001C37 000000000001 0F", "00001C37 0000 000000 01 00 9AC87503 9000"),
            ("80540100 0F 00000001 20110919 204812 303D735D 08", "44A8E04A 350AC480 9000"),
        ]
    )
    purse = Purse(card)
    init = purse.initialize_purchase(0x01, 0x1C37, h("000000000001"), capp=True)
    assert (init.balance_fen, init.offline_counter, init.overdraft_limit_fen) == (0x1C37, 0, 0)
    assert init.card_random == h("9AC87503") and init.key_version == 1
    sespk = crypto.purchase_session_key(
        h("A338D92A10C8285411E761445C831C22"), init.card_random, 0, 1
    )
    mac1 = crypto.purchase_mac1(
        sespk,
        0x1C37,
        TxnType.CAPP_PURCHASE,
        h("000000000001"),
        h("20110919204812"),
        auth_code=h("8588D32B7688D32B76"),
    )
    result = purse.debit(1, h("20110919204812"), mac1)
    assert result.tac == h("44A8E04A") and result.mac2 == h("350AC480")
    assert crypto.purchase_mac2(sespk, 0x1C37) == result.mac2
    assert card.done()


def test_transaction_log_record_of_the_real_card() -> None:
    """t4_readTransRecord: the load done with INIT counter 0000 is logged with counter 0001."""
    record = "0001 000000 00001C37 02 000001000050 20140825 103100"
    card = ScriptedCard([("00B201C417", record + "9000"), ("00B202C417", "6A83")])
    log = Purse(card).read_log(records_max=2)
    assert len(log) == 1
    entry = log[0]
    assert (entry.counter, entry.amount_fen, entry.txn_type, entry.terminal_id) == (
        1,
        0x1C37,
        2,
        h("000001000050"),
    )
    assert entry.occurred_at is not None and entry.occurred_at.isoformat() == "2014-08-25T10:31:00"
    assert card.done()


def test_get_transaction_proof_is_805a_00_type_02_counter_plus_one() -> None:
    card = ScriptedCard([("805A000902000108", "350AC480 44A8E04A 9000")])
    proof = Purse(card).get_transaction_proof(TxnType.CAPP_PURCHASE, 1)
    assert proof.mac == h("350AC480") and proof.tac == h("44A8E04A")


def test_update_capp_data_cache_of_a_jtt978_bus_record() -> None:
    record = "2702 7D" + "00" * 125
    card = ScriptedCard([("80DC02D080" + record, "9000")])
    Purse(card).update_capp_data_cache(h(record))
    assert card.done()


@pytest.mark.parametrize(
    ("sw", "name"),
    [
        ("9302", "PurseMacInvalid"),
        ("9401", "InsufficientFunds"),
        ("9406", "ProofNotAvailable"),
        ("6A82", "FileNotFound"),
    ],
)
def test_trace_status_words_raise_their_typed_errors(sw: str, name: str) -> None:
    card = ScriptedCard([("805A000602000108", sw)])
    with pytest.raises(Exception) as caught:
        Purse(card).get_transaction_proof(TxnType.EP_PURCHASE, 1)
    assert type(caught.value).__name__ == name


def test_select_any_falls_back_from_t_union_to_the_city_card_aid() -> None:
    fci = (
        "6F32 8409A00000000386980701 A525 9F080101 9F0C1E" + CHANGSHA_0015.replace(" ", "") + "9000"
    )
    card = ScriptedCard(
        [("00A4040008A00000063201010500", "6A82"), ("00A4040009A0000000038698070100", fci)]
    )
    assert Purse(card).select_any().df_name == AID_MOHURD_EP
    assert card.done()


def test_select_any_falls_back_to_the_ep_df_and_then_gives_up() -> None:
    card = ScriptedCard(
        [
            ("00A4040008A00000063201010500", "6A82"),
            ("00A4040009A0000000038698070100", "6A82"),
            ("00A4000002100100", "9000"),
        ]
    )
    assert Purse(card).select_any().df_name is None
    none = ScriptedCard(
        [
            ("00A4040008A00000063201010500", "6A82"),
            ("00A4040009A0000000038698070100", "6A82"),
            ("00A4000002100100", "6A82"),
        ]
    )
    from cardio.errors import FileNotFound

    with pytest.raises(FileNotFound):
        Purse(none).select_any()


def test_get_message_of_a_city_card_returns_its_9_byte_auth_code() -> None:
    card = ScriptedCard([("80CA000009", "8588D32B7688D32B76 9000")])
    assert Purse(card).get_auth_code() == h("8588D32B7688D32B76")


def test_pcsc_return_codes_map_to_cardio_errors() -> None:
    from smartcard import scard

    from cardio.errors import CardRemoved, NoCard, ReaderNotFound, ReaderUnavailable, TransportError
    from cardio.pcsc import error_for_hresult

    cases = {
        scard.SCARD_W_REMOVED_CARD: CardRemoved,
        scard.SCARD_E_NOT_TRANSACTED: CardRemoved,
        scard.SCARD_W_RESET_CARD: CardRemoved,
        scard.SCARD_E_NO_SMARTCARD: NoCard,
        scard.SCARD_E_UNKNOWN_READER: ReaderNotFound,
        scard.SCARD_E_NO_SERVICE: ReaderUnavailable,
        scard.SCARD_E_SERVICE_STOPPED: ReaderUnavailable,
    }
    for code, cls in cases.items():
        assert type(error_for_hresult(code, "doing")) is cls
    assert type(error_for_hresult(scard.SCARD_E_INVALID_PARAMETER, "doing")) is TransportError


def test_a_card_without_expiry_dates_reads_as_open_ended() -> None:
    raw = h("0731410000000000 0101 00004100000089999985 FFFFFFFF FFFFFFFF 0100".replace(" ", ""))
    card = ScriptedCard([("00B095001E", raw.hex() + "9000")])
    info = Purse(card).read_public_info()
    assert info.valid_from is None and info.valid_until is None
    assert info.is_valid_on(date(2099, 1, 1))
    from cardio.records import CardType

    assert info.card_type is CardType.ADULT


def test_an_unused_log_slot_ends_the_log() -> None:
    record = "0002 000000 00000064 06 000001000050 20261129 080000"
    card = ScriptedCard([("00B201C417", record + "9000"), ("00B202C417", "00" * 23 + "9000")])
    log = Purse(card).read_log()
    assert [r.counter for r in log] == [2]
    assert card.done()
