"""The purse cryptography against every vector of PURSE.md §3.9, plus properties."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cardio import crypto
from cardio.crypto import (
    Algorithm,
    CryptoInputError,
    LoadTacInput,
    PurchaseTacInput,
    TacVerifier,
)

h = bytes.fromhex

# Vector 1 (purchase) and 2 (load): test keys published with PURSE.md.
V12_KEY = h("11223344556677888877665544332211")
# Vectors 3 and 4: a real card's published test keys.
V3_DLK = h("374598B5C0B0EAE1E1D06609AC5BB369")
V3_DTK = h("CAA6025290114BFCC3C9043F70F7A07A")
V4_DPK = h("A338D92A10C8285411E761445C831C22")


def test_vector1_purchase_session_key_and_mac1() -> None:
    sespk = crypto.purchase_session_key(V12_KEY, h("11223344"), 0, 0x0001)
    assert sespk == h("003238ABC57659DD")
    mac1 = crypto.purchase_mac1(sespk, 0x1000, 0x06, h("001122334455"), h("20120229135100"))
    assert mac1 == h("F15CAB75")


def test_vector1_with_a_datetime_is_the_same_as_bcd() -> None:
    sespk = h("003238ABC57659DD")
    naive = datetime(2012, 2, 29, 13, 51, 0)
    assert crypto.purchase_mac1(sespk, 0x1000, 6, h("001122334455"), naive) == h("F15CAB75")
    aware_utc = datetime(2012, 2, 29, 5, 51, 0, tzinfo=UTC)  # 13:51 in Asia/Shanghai
    assert crypto.purchase_mac1(sespk, 0x1000, 6, h("001122334455"), aware_utc) == h("F15CAB75")


def test_vector2_load_session_key_and_mac1() -> None:
    seslk = crypto.load_session_key(V12_KEY, h("11223344"), 0)
    assert seslk == h("9B1D924E05595603")
    # The published MAC1 2988AE5A is reproduced with old balance 0, amount 0x1000, ED load, 001122334455.
    assert crypto.load_mac1(seslk, 0, 0x1000, 0x01, h("001122334455")) == h("2988AE5A")


def test_vector3_real_card_load() -> None:
    seslk = crypto.load_session_key(V3_DLK, h("CDEF4F20"), 0)
    term = h("000001000050")
    assert crypto.load_mac1(seslk, 0, 0x1C37, 0x02, term) == h("06B1BEF5")
    assert crypto.load_mac2(seslk, 0x1C37, 0x02, term, h("20140825103100")) == h("0641DCD8")
    assert crypto.tac_key(V3_DTK) == h("096F066DE0E6EB86")
    tac = crypto.load_tac(V3_DTK, 0x1C37, 0, 0x1C37, 0x02, term, h("20140825103100"))
    assert tac == h("ED0F8755")


def test_vector4_real_card_capp_purchase() -> None:
    sespk = crypto.purchase_session_key(V4_DPK, h("9AC87503"), 0, 0x00000001)
    term = h("000000000001")
    when = h("20110919204812")
    assert crypto.purchase_mac1(sespk, 0x1C37, 0x09, term, when) == h("CD573164")
    with_code = crypto.purchase_mac1(
        sespk, 0x1C37, 0x09, term, when, auth_code=h("8588D32B7688D32B76")
    )
    assert with_code == h("303D735D")
    assert crypto.purchase_mac2(sespk, 0x1C37) == h("350AC480")
    assert crypto.purchase_tac(V3_DTK, 0x1C37, 0x09, term, 1, when) == h("44A8E04A")


def test_vector6_diversification() -> None:
    assert crypto.diversify_key(V12_KEY, h("4100000089999985")) == h(
        "A0068F366D0535ADF42057760F84B2F5"
    )
    # The 10-byte application serial diversifies by its rightmost 8 bytes.
    assert crypto.diversify_key(V12_KEY, h("00004100000089999985")) == h(
        "A0068F366D0535ADF42057760F84B2F5"
    )


def test_mac_is_des_cbc_over_data_padded_80_with_a_full_block_when_aligned() -> None:
    key = h("0123456789ABCDEF")
    data = h("0011223344556677")
    des = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    first = des.update(data)
    pad_block = b"\x80" + bytes(7)
    second = des.update(bytes(a ^ b for a, b in zip(first, pad_block, strict=True)))
    assert crypto.mac(key, data) == second[:4]
    short = h("00112233")
    one = des.update(short + b"\x80" + bytes(3))
    assert crypto.mac(key, short) == one[:4]


def test_retail_mac_equals_single_des_when_both_halves_are_equal() -> None:
    # ISO 9797-1 algorithm 3 with K-left == K-right collapses to algorithm 1.
    half = h("0123456789ABCDEF")
    data = b"onecard line protection"
    assert crypto.mac(half + half, data) == crypto.mac(half, data)
    assert crypto.mac(half + h("FEDCBA9876543210"), data) != crypto.mac(half, data)


def test_secure_messaging_mac_uses_the_challenge_as_iv() -> None:
    key = h("F28E92292DCB63F11EA7F5776A7122B8")
    apdu = h("04D685002C") + bytes(40)
    one = crypto.secure_messaging_mac(key, h("1B534732"), apdu)
    other = crypto.secure_messaging_mac(key, h("1B534733"), apdu)
    assert len(one) == 4 and one != other


@pytest.mark.parametrize(
    "call",
    [
        lambda: crypto.purchase_session_key(V12_KEY, b"\x00" * 3, 0, 0),
        lambda: crypto.purchase_session_key(V12_KEY, b"\x00" * 4, 0x10000, 0),
        lambda: crypto.purchase_mac1(h("003238ABC57659DD"), -1, 6, bytes(6), bytes(7)),
        lambda: crypto.purchase_mac1(h("003238ABC57659DD"), 1, 6, bytes(5), bytes(7)),
        lambda: crypto.purchase_mac1(h("003238ABC57659DD"), 1, 6, bytes(6), h("2012022913510A")),
        lambda: crypto.diversify_key(V12_KEY, bytes(9)),
        lambda: crypto.mac(bytes(12), b"x"),
        lambda: crypto.tac_key(bytes(8)),
    ],
)
def test_bad_inputs_raise_crypto_input_error(call) -> None:
    with pytest.raises(CryptoInputError):
        call()


def test_verify_purchase_tac_from_the_master_key() -> None:
    master = h("00112233445566778899AABBCCDDEEFF")
    serial = h("00003100000000000042")
    dtk = crypto.diversify_key(master, serial)
    when = datetime(2026, 11, 29, 8, 30, 5)
    tac = crypto.purchase_tac(dtk, 200, 9, h("000001000050"), 77, when)
    assert crypto.verify_purchase_tac(master, serial, 200, 9, h("000001000050"), 77, when, tac)
    assert not crypto.verify_purchase_tac(master, serial, 201, 9, h("000001000050"), 77, when, tac)
    assert not crypto.verify_purchase_tac(master, serial, 200, 9, h("000001000050"), 78, when, tac)
    assert not crypto.verify_purchase_tac(master, serial, 200, 9, h("000001000050"), 77, when, b"")


def test_verify_load_tac_matches_vector3_through_a_master_key() -> None:
    # Build a master whose diversified key we do not know in advance; check round trip.
    master = h("0F1E2D3C4B5A69788796A5B4C3D2E1F0")
    serial = h("4100000089999985")
    dtk = crypto.diversify_key(master, serial)
    when = h("20140825103100")
    tac = crypto.load_tac(dtk, 7223, 0, 7223, 2, h("000001000050"), when)
    assert crypto.verify_load_tac(master, serial, 7223, 0, 7223, 2, h("000001000050"), when, tac)
    assert not crypto.verify_load_tac(
        master, serial, 7223, 1, 7223, 2, h("000001000050"), when, tac
    )


def test_tac_verifier_batch_gives_one_result_per_item_and_tolerates_malformed_items() -> None:
    master = h("00112233445566778899AABBCCDDEEFF")
    verifier = TacVerifier(master, cache_cards_max=2)
    items = []
    for n in range(5):
        serial = (0x3100000000000000 + n).to_bytes(8, "big")
        dtk = crypto.diversify_key(master, serial)
        tac = crypto.purchase_tac(dtk, 100 + n, 6, h("000001000050"), n, h("20261129083005"))
        items.append(
            PurchaseTacInput(serial, 100 + n, 6, h("000001000050"), n, h("20261129083005"), tac)
        )
    forged = PurchaseTacInput(
        items[1].card_app_serial, 1, 6, h("000001000050"), 1, h("20261129083005"), items[1].tac
    )
    malformed = PurchaseTacInput(bytes(3), 1, 6, bytes(6), 1, bytes(7), bytes(4))
    results = verifier.verify_purchases([*items, forged, malformed, items[0]])
    assert results == [True] * 5 + [False, False, True]
    serial = h("3100000000000009")
    dtk = crypto.diversify_key(master, serial)
    load_tac = crypto.load_tac(dtk, 500, 3, 500, 2, h("000001000050"), h("20261129083005"))
    load = LoadTacInput(serial, 500, 3, 500, 2, h("000001000050"), h("20261129083005"), load_tac)
    assert verifier.verify_loads([load]) == [True]
    assert "cards_cached=2" in repr(verifier)  # bounded by cache_cards_max
    assert "key" not in repr(verifier).lower().replace("cards_cached", "")


def test_sm4_profile_round_trips_and_differs_from_3des() -> None:
    master = h("0123456789ABCDEFFEDCBA9876543210")
    serial = h("3100000000000001")
    dk = crypto.diversify_key(master, serial, Algorithm.SM4)
    assert len(dk) == 16 and dk != crypto.diversify_key(master, serial)
    sespk = crypto.purchase_session_key(dk, h("01020304"), 5, 9, Algorithm.SM4)
    assert len(sespk) == 16
    mac1 = crypto.purchase_mac1(
        sespk, 100, 6, bytes(6), h("20261129083005"), algorithm=Algorithm.SM4
    )
    assert len(mac1) == 4
    tac = crypto.purchase_tac(dk, 100, 6, bytes(6), 9, h("20261129083005"), Algorithm.SM4)
    assert crypto.verify_purchase_tac(
        master, serial, 100, 6, bytes(6), 9, h("20261129083005"), tac, Algorithm.SM4
    )
    assert not crypto.verify_purchase_tac(
        master, serial, 100, 6, bytes(6), 9, h("20261129083005"), tac
    )


keys16 = st.binary(min_size=16, max_size=16)
amounts = st.integers(0, 0xFFFFFFFF)
serial8 = st.binary(min_size=8, max_size=8)
datetimes = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))


@settings(max_examples=150, deadline=None)
@given(key=st.binary(min_size=8, max_size=8), data=st.binary(max_size=64), flip=st.data())
def test_tampered_data_never_verifies(key: bytes, data: bytes, flip: st.DataObject) -> None:
    good = crypto.mac(key, data)
    if data:
        i = flip.draw(st.integers(0, len(data) - 1))
        bit = flip.draw(st.integers(0, 7))
        tampered = data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]
    else:
        tampered = b"\x00"
    assert crypto.mac(key, tampered) != good


@settings(max_examples=100, deadline=None)
@given(
    master=keys16,
    other=keys16,
    serial=serial8,
    amount=amounts,
    tx=st.sampled_from([6, 9]),
    term=st.binary(min_size=6, max_size=6),
    tseq=st.integers(0, 0xFFFFFFFF),
    when=datetimes,
    algorithm=st.sampled_from(list(Algorithm)),
)
def test_tac_verifies_with_the_issuer_key_and_fails_with_any_other(
    master, other, serial, amount, tx, term, tseq, when, algorithm
) -> None:
    dtk = crypto.diversify_key(master, serial, algorithm)
    tac = crypto.purchase_tac(dtk, amount, tx, term, tseq, when, algorithm)
    assert crypto.verify_purchase_tac(master, serial, amount, tx, term, tseq, when, tac, algorithm)
    # DES ignores the parity bit of each key byte: "another key" differs in a key bit.
    assume(
        bytes(b & 0xFE for b in other) != bytes(b & 0xFE for b in master)
        or algorithm is Algorithm.SM4
    )
    assume(other != master)
    assert not crypto.verify_purchase_tac(
        other, serial, amount, tx, term, tseq, when, tac, algorithm
    )


@settings(max_examples=150, deadline=None)
@given(
    master=keys16,
    serial=serial8,
    amount=amounts,
    term=st.binary(min_size=6, max_size=6),
    tseq=st.integers(0, 0xFFFFFFFF),
    when=datetimes,
    field=st.sampled_from(["serial", "amount", "type", "terminal", "tseq", "when", "tac"]),
    algorithm=st.sampled_from(list(Algorithm)),
)
def test_a_tap_record_with_any_field_tampered_never_verifies(
    master, serial, amount, term, tseq, when, field, algorithm
) -> None:
    dtk = crypto.diversify_key(master, serial, algorithm)
    tac = crypto.purchase_tac(dtk, amount, 9, term, tseq, when, algorithm)
    record = {
        "serial": serial,
        "amount": amount,
        "type": 9,
        "terminal": term,
        "tseq": tseq,
        "when": when,
        "tac": tac,
    }
    tampered = {
        "serial": bytes([serial[0] ^ 0x80]) + serial[1:],
        "amount": amount ^ 1,
        "type": 6,
        "terminal": term[:-1] + bytes([term[-1] ^ 0x01]),
        "tseq": tseq ^ 0x10000,
        "when": when.replace(second=(when.second + 1) % 60),
        "tac": bytes([tac[0] ^ 0x01]) + tac[1:],
    }[field]
    record[field] = tampered
    assert not crypto.verify_purchase_tac(
        master,
        record["serial"],
        record["amount"],
        record["type"],
        record["terminal"],
        record["tseq"],
        record["when"],
        record["tac"],
        algorithm,
    )


@given(
    algorithm=st.sampled_from([Algorithm.TDES, Algorithm.SM4]),
    taps=st.lists(
        st.tuples(
            st.integers(0, 3),  # which of four cards
            st.integers(0, 2**32 - 1),
            st.integers(0, 255),
            st.binary(min_size=6, max_size=6),
            st.integers(0, 2**32 - 1),
            st.datetimes(
                min_value=datetime(2000, 1, 2),
                max_value=datetime(2099, 12, 30),
                timezones=st.just(UTC),
            ),
            st.booleans(),  # a forged TAC
        ),
        max_size=12,
    ),
)
@settings(max_examples=60)
def test_the_verifier_checks_each_tac_alone_whatever_came_before_for_its_card(
    algorithm: Algorithm, taps: list[tuple[int, int, int, bytes, int, datetime, bool]]
) -> None:
    """One cipher context per card serves every MAC of the card in turn: each result is what
    the independent check of that one TAC says, in any order, forged or not."""
    master = h("00112233445566778899AABBCCDDEEFF")
    verifier = TacVerifier(master, algorithm, cache_cards_max=2)  # evictions too
    for card, amount, kind, terminal, serial_no, when, forge in taps:
        serial = (0x3100000000000000 + card).to_bytes(8, "big")
        dtk = crypto.diversify_key(master, serial, algorithm)
        tac = crypto.purchase_tac(dtk, amount, kind, terminal, serial_no, when, algorithm)
        if forge:
            tac = bytes([tac[0] ^ 1]) + tac[1:]
        expected = crypto.verify_purchase_tac(
            master, serial, amount, kind, terminal, serial_no, when, tac, algorithm
        )
        assert expected is not forge
        item = PurchaseTacInput(serial, amount, kind, terminal, serial_no, when, tac)
        assert verifier.check_purchase(serial, amount, kind, terminal, serial_no, when, tac) is (
            expected
        )
        assert verifier.verify_purchase(item) is expected


@given(
    algorithm=st.sampled_from([Algorithm.TDES, Algorithm.SM4]),
    master=st.binary(min_size=16, max_size=16),
    serials=st.lists(
        st.one_of(st.binary(min_size=8, max_size=8), st.binary(min_size=10, max_size=10)),
        min_size=1,
        max_size=6,
    ),
    amount=st.integers(0, 2**32 - 1),
    when=st.datetimes(
        min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=st.just(UTC)
    ),
)
@settings(max_examples=80)
def test_the_verifier_derives_each_cards_key_as_the_specification_does(
    algorithm: Algorithm, master: bytes, serials: list[bytes], amount: int, when: datetime
) -> None:
    """The verifier diversifies on one master context (both halves in one call): every card's
    TAC is the one computed from `diversify_key`, whatever the master and the serial (8 bytes,
    or 10 of which the rightmost 8 count), and a card whose context was evicted derives again."""
    verifier = TacVerifier(master, algorithm, cache_cards_max=1)
    for serial in [*serials, *serials]:
        dtk = crypto.diversify_key(master, serial, algorithm)
        expected = crypto.purchase_tac(dtk, amount, 6, h("000001000050"), 7, when, algorithm)
        assert verifier.purchase_tac(serial, amount, 6, h("000001000050"), 7, when) == expected


def test_the_verifier_refuses_malformed_values_without_raising() -> None:
    verifier = TacVerifier(h("00112233445566778899AABBCCDDEEFF"))
    serial, when = h("3100000000000001"), datetime(2026, 1, 1, tzinfo=UTC)
    good = (serial, 1, 6, bytes(6), 1, when, bytes(4))
    for n, bad in ((0, bytes(3)), (1, -1), (1, 2**32), (2, 256), (3, bytes(5)), (4, 2**32)):
        values = list(good)
        values[n] = bad
        assert verifier.check_purchase(*values) is False  # type: ignore[arg-type]
