"""Every file and response layout round-trips: parse(encode(x)) == x (Hypothesis)."""

from __future__ import annotations

from datetime import date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from cardio.crypto import Algorithm
from cardio.records import (
    CardType,
    DebitResult,
    HolderInfo,
    JourneyState,
    LoadInit,
    LogRecord,
    ManagementInfo,
    PublicInfo,
    PurchaseInit,
    TransactionProof,
    TransitRecord,
    TripRecord,
    mask_card_number,
)

b = st.binary
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u24 = st.integers(0, 0xFFFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
days = st.one_of(st.none(), st.dates(min_value=date(1000, 1, 1), max_value=date(9999, 12, 31)))
moments = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda d: d.replace(microsecond=0)
    ),
)

RECORDS = st.one_of(
    st.builds(
        PublicInfo,
        b(min_size=8, max_size=8),
        u8,
        u8,
        b(min_size=10, max_size=10),
        days,
        days,
        u8,
        u8,
    ),
    st.builds(HolderInfo, u8, u8, b(min_size=20, max_size=20), b(min_size=32, max_size=32), u8),
    st.builds(
        ManagementInfo,
        b(min_size=4, max_size=4),
        b(min_size=2, max_size=2),
        b(min_size=2, max_size=2),
        st.booleans(),
        u8,
    ),
    st.builds(LogRecord, u16, u24, u32, u8, b(min_size=6, max_size=6), moments),
    st.builds(
        PurchaseInit, u32, u16, u24, u8, st.sampled_from(list(Algorithm)), b(min_size=4, max_size=4)
    ),
    st.builds(
        LoadInit,
        u32,
        u16,
        u8,
        st.sampled_from(list(Algorithm)),
        b(min_size=4, max_size=4),
        b(min_size=4, max_size=4),
    ),
    st.builds(DebitResult, b(min_size=4, max_size=4), b(min_size=4, max_size=4)),
    st.builds(TransactionProof, b(min_size=4, max_size=4), b(min_size=4, max_size=4)),
    st.builds(
        TransitRecord,
        st.sampled_from([JourneyState.BOARDED, JourneyState.ALIGHTED]),
        u32,
        u16,
        u8,
        b(min_size=6, max_size=6),
        moments,
        u32,
        u32,
        u8,
        moments,
        days,
        u32,
        u16,
    ),
    st.builds(
        TripRecord,
        u8,
        b(min_size=8, max_size=8),
        u8,
        b(min_size=7, max_size=7),
        u32,
        u32,
        moments,
        b(min_size=2, max_size=2),
        b(min_size=8, max_size=8),
    ),
)


@settings(max_examples=400, deadline=None)
@given(RECORDS)
def test_every_layout_round_trips(record) -> None:
    assert type(record).parse(record.encode()) == record


def test_an_unwritten_transit_record_reads_as_the_default() -> None:
    raw = bytearray(TransitRecord(JourneyState.BOARDED, line=9).encode())
    raw[3] = 0  # valid flag off
    assert TransitRecord.parse(bytes(raw)) == TransitRecord()


def test_card_type_labels() -> None:
    assert [t.label for t in CardType] == ["adult", "student", "senior", "disabled"]
    assert CardType.from_label("Senior") is CardType.SENIOR


def test_card_numbers_are_masked_for_logs() -> None:
    assert mask_card_number("3100000000000042") == "3100********0042"
    assert mask_card_number("1234") == "****"
