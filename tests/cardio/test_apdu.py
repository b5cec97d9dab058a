"""ISO 7816-4 layer: cases 1-4, short/extended, 61xx/6Cxx, the status table, strict parsing, fuzzing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardio import errors
from cardio.apdu import (
    GET_RESPONSE_ROUNDS_MAX,
    CommandApdu,
    ResponseApdu,
    encode_tlv,
    find_tlv,
    parse_tlv,
    transceive,
)
from cardio.errors import ApduError, CardioError, ResponseMalformed
from cardio.purse import Purse
from cardio.records import (
    DebitResult,
    HolderInfo,
    LoadInit,
    LogRecord,
    ManagementInfo,
    PublicInfo,
    PurchaseInit,
    TransactionProof,
    TransitRecord,
    TripRecord,
)

h = bytes.fromhex


@pytest.mark.parametrize(
    ("command", "encoded"),
    [
        (CommandApdu(0x00, 0x84, 0x00, 0x00), "00840000"),
        (CommandApdu(0x80, 0x5C, 0x00, 0x02, le=4), "805C000204"),
        (CommandApdu(0x00, 0xA4, 0x00, 0x00, h("1001")), "00A40000021001"),
        (
            CommandApdu(0x00, 0xA4, 0x04, 0x00, h("A000000632010105"), le=256),
            "00A4040008A00000063201010500",
        ),
        (CommandApdu(0x00, 0xB0, 0x95, 0x00, le=300), "00B0950000012C"),
        (CommandApdu(0x80, 0xDC, 0x00, 0xF0, bytes(300)), "80DC00F000012C" + "00" * 300),
        (
            CommandApdu(0x80, 0xDC, 0x00, 0xF0, bytes(300), le=65536),
            "80DC00F000012C" + "00" * 300 + "0000",
        ),
    ],
)
def test_encode_and_decode_every_case(command: CommandApdu, encoded: str) -> None:
    assert command.encode() == h(encoded)
    assert CommandApdu.decode(h(encoded)) == command


def test_case_numbers() -> None:
    assert CommandApdu(0, 0, 0, 0).case == 1
    assert CommandApdu(0, 0, 0, 0, le=1).case == 2
    assert CommandApdu(0, 0, 0, 0, b"x").case == 3
    assert CommandApdu(0, 0, 0, 0, b"x", 1).case == 4


@pytest.mark.parametrize(
    "raw", ["", "00A404", "00A4040005AA", "00A40400FF00", "00A4040000000000", "00A404000000"]
)
def test_malformed_commands_are_apdu_errors(raw: str) -> None:
    with pytest.raises(ApduError):
        CommandApdu.decode(h(raw))


def test_command_fields_are_bounded() -> None:
    with pytest.raises(ApduError):
        CommandApdu(0x100, 0, 0, 0)
    with pytest.raises(ApduError):
        CommandApdu(0, 0, 0, 0, le=0)
    with pytest.raises(ApduError):
        CommandApdu(0, 0, 0, 0, bytes(65536))


@settings(max_examples=300, deadline=None)
@given(
    cla=st.integers(0, 255),
    ins=st.integers(0, 255),
    data=st.binary(max_size=400),
    le=st.one_of(st.none(), st.integers(1, 65536)),
)
def test_command_round_trips(cla: int, ins: int, data: bytes, le: int | None) -> None:
    command = CommandApdu(cla, ins, 1, 2, data, le)
    assert CommandApdu.decode(command.encode()) == command


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_decoding_any_bytes_as_a_command_only_raises_apdu_errors(raw: bytes) -> None:
    with contextlib.suppress(ApduError):  # anything else fails the test
        CommandApdu.decode(raw)


def test_response_needs_two_status_bytes() -> None:
    with pytest.raises(ResponseMalformed):
        ResponseApdu.decode(b"\x90")
    assert ResponseApdu.decode(h("01029000")) == ResponseApdu(h("0102"), 0x9000)


@pytest.mark.parametrize(
    ("sw", "cls"),
    [
        (0x9401, errors.InsufficientFunds),
        (0x9302, errors.PurseMacInvalid),
        (0x9406, errors.ProofNotAvailable),
        (0x6A82, errors.FileNotFound),
        (0x6A83, errors.RecordNotFound),
        (0x6988, errors.SecureMessagingMacInvalid),
        (0x6985, errors.ConditionsNotSatisfied),
        (0x9403, errors.KeyNotSupported),
        (0x9402, errors.OutOfRange),
        (0x6D00, errors.InsNotSupported),
        (0x6F00, errors.UnknownStatus),
    ],
)
def test_status_words_map_to_typed_errors_from_one_table(sw: int, cls: type) -> None:
    with pytest.raises(cls) as caught:
        ResponseApdu(b"", sw).check()
    assert caught.value.sw == sw
    assert isinstance(caught.value, errors.CardStatusError)
    assert f"{sw:04X}" in str(caught.value)


def test_secure_messaging_mac_error_is_not_the_purse_mac_error() -> None:
    assert not issubclass(errors.SecureMessagingMacInvalid, errors.PurseMacInvalid)
    assert errors.error_for_status(0x6988).code != errors.error_for_status(0x9302).code


def test_expect_insists_on_the_exact_length() -> None:
    with pytest.raises(ResponseMalformed):
        ResponseApdu(bytes(3), 0x9000).expect(4)
    with pytest.raises(ResponseMalformed):
        ResponseApdu(bytes(5), 0x9000).expect(4)
    assert ResponseApdu(bytes(4), 0x9000).expect(4) == bytes(4)


class Scripted:
    def __init__(self, responses: list[bytes]) -> None:
        self.responses = responses
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return self.responses.pop(0)

    def close(self) -> None:
        pass


def test_61xx_is_followed_by_get_response_and_data_is_joined() -> None:
    transport = Scripted([h("AABB6102"), h("CCDD9000")])
    response = transceive(transport, CommandApdu(0x80, 0x5C, 0x00, 0x02, le=4))
    assert response == ResponseApdu(h("AABBCCDD"), 0x9000)
    assert transport.sent[1] == h("00C0000002")


def test_6cxx_resends_with_the_right_le() -> None:
    transport = Scripted([h("6C17"), h("00" * 23 + "9000")])
    response = transceive(transport, CommandApdu(0x00, 0xB2, 0x01, 0xC4, le=256))
    assert len(response.data) == 23
    assert transport.sent[1] == h("00B201C417")


def test_endless_61xx_is_bounded() -> None:
    transport = Scripted([h("6101")] * (GET_RESPONSE_ROUNDS_MAX + 2))
    with pytest.raises(ResponseMalformed):
        transceive(transport, CommandApdu(0x80, 0x5C, 0x00, 0x02, le=4))


def test_tlv_round_trip_and_search() -> None:
    inner = encode_tlv(0x9F08, b"\x01") + encode_tlv(0x9F0C, bytes(30))
    fci = encode_tlv(0x6F, encode_tlv(0x84, h("A000000632010105")) + encode_tlv(0xA5, inner))
    items = parse_tlv(fci)
    assert find_tlv(items, 0x84).value == h("A000000632010105")
    assert find_tlv(items, 0x9F0C).value == bytes(30)
    assert find_tlv(items, 0x50) is None
    long_value = bytes(200)
    assert parse_tlv(encode_tlv(0x53, long_value))[0].value == long_value


@pytest.mark.parametrize("raw", ["6F", "6F05", "6F0284", "9F", "6F81", "6F8500000000"])
def test_malformed_tlv_is_response_malformed(raw: str) -> None:
    with pytest.raises(ResponseMalformed):
        parse_tlv(h(raw))


PARSERS = [
    PublicInfo.parse,
    HolderInfo.parse,
    ManagementInfo.parse,
    LogRecord.parse,
    PurchaseInit.parse,
    LoadInit.parse,
    DebitResult.parse,
    TransactionProof.parse,
    TransitRecord.parse,
    TripRecord.parse,
    parse_tlv,
    ResponseApdu.decode,
]
SIZES = [30, 55, 60, 23, 15, 16, 8, 128, 48]


@settings(max_examples=400, deadline=None)
@given(
    parser=st.sampled_from(PARSERS),
    raw=st.one_of(
        st.binary(max_size=200),
        st.sampled_from(SIZES).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
        st.sampled_from(SIZES).flatmap(
            lambda n: st.builds(
                lambda prefix, tail: prefix + tail,
                st.sampled_from([h("2702 7D01"), h("6F"), h("9F0C"), h("20261129")]),
                st.binary(min_size=max(0, n - 4), max_size=n),
            )
        ),
    ),
)
def test_fuzzed_card_answers_only_raise_typed_errors(parser, raw: bytes) -> None:
    with contextlib.suppress(CardioError):  # anything else fails the test
        parser(raw)


class FuzzCard:
    """Answers every command with random bytes drawn by Hypothesis."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def transmit(self, apdu: bytes) -> bytes:
        size = self.data.draw(st.sampled_from([0, 1, 2, 4, 6, 10, 17, 18, 24, 25, 32, 57, 62, 130]))
        body = self.data.draw(st.binary(min_size=max(0, size - 2), max_size=size))
        sw = self.data.draw(
            st.sampled_from([h("9000"), h("6A83"), h("6C17"), h("6104"), h("9302"), b""])
        )
        return body + sw

    def close(self) -> None:
        pass


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    method=st.sampled_from(
        [
            lambda p: p.select(),
            lambda p: p.select_ppse(),
            lambda p: p.read_public_info(),
            lambda p: p.read_holder(),
            lambda p: p.read_management(),
            lambda p: p.get_balance(),
            lambda p: p.read_log(),
            lambda p: p.read_transit_record(),
            lambda p: p.read_trips(),
            lambda p: p.initialize_purchase(1, 100, bytes(6), capp=True),
            lambda p: p.initialize_load(1, 100, bytes(6)),
            lambda p: p.debit(1, h("20261129101010"), bytes(4)),
            lambda p: p.credit_load(h("20261129101010"), bytes(4)),
            lambda p: p.get_transaction_proof(6, 1),
        ]
    ),
)
def test_purse_over_a_fuzzing_card_raises_only_cardio_errors(data: st.DataObject, method) -> None:
    with contextlib.suppress(CardioError):  # anything else fails the test
        method(Purse(FuzzCard(data)))
