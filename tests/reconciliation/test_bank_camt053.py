"""Reading camt.053: a statement our writer made reads back as written (Hypothesis); a bank's
hand-written statement (camt.053.001.02, a batch entry, a fund's credit) reads with every
reference; a bad entry is refused with its reason next to the good ones; a bad file is refused
whole with a typed error."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from string import ascii_letters, digits

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciliation.bank.camt053 import parse_camt053
from reconciliation.bank.camt053_writer import camt053_xml
from reconciliation.bank.matching import line_items
from reconciliation.bank.statement import (
    STATEMENT_BYTES_MAX,
    BankEntry,
    BankStatement,
    Direction,
    EntryDetail,
    Refusal,
    StatementMalformed,
    StatementTooLarge,
)

HAND_WRITTEN = Path(__file__).parent.parent / "data" / "camt053_escrow_batch.xml"
DAY = date(2026, 12, 5)
refs = st.text(ascii_letters + digits + "/-", min_size=1, max_size=35)
accounts = st.text(digits, min_size=12, max_size=19)
texts = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=40,
)


@st.composite
def details(draw: st.DrawFn, amount_fen: int | None) -> EntryDetail:
    return EntryDetail(
        amount_fen,
        draw(st.none() | refs),
        draw(st.none() | refs),
        draw(st.none() | refs),
        draw(st.none() | texts),
        draw(st.none() | texts),
        draw(st.none() | accounts),
    )


@st.composite
def entries(draw: st.DrawFn, entry_no: int) -> BankEntry:
    parts = draw(st.lists(st.integers(1, 10**9), min_size=0, max_size=4))
    if len(parts) > 1:
        amount = sum(parts)
        entry_details = tuple(draw(details(p)) for p in parts)
    else:
        amount = parts[0] if parts else draw(st.integers(1, 10**11))
        entry_details = (draw(details(None)),) if parts else ()
    booked = DAY + timedelta(days=draw(st.integers(-3, 3)))
    return BankEntry(
        entry_no=entry_no,
        bank_ref=draw(refs),
        amount_fen=amount,
        direction=draw(st.sampled_from(Direction)),
        booking_date=booked,
        value_date=booked + timedelta(days=draw(st.integers(0, 2))),
        reversal=draw(st.booleans()),
        batch_ref=draw(st.none() | refs),
        info=draw(st.none() | texts),
        details=entry_details,
    )


@st.composite
def statements(draw: st.DrawFn) -> BankStatement:
    count = draw(st.integers(0, 6))
    return BankStatement(
        message_id=draw(refs),
        statement_id=draw(refs),
        account=draw(accounts),
        currency="CNY",
        created_at=datetime(2026, 12, 6, 10, tzinfo=UTC),
        opening_fen=draw(st.none() | st.integers(-(10**12), 10**12)),
        closing_fen=draw(st.none() | st.integers(-(10**12), 10**12)),
        entries=tuple(draw(entries(n)) for n in range(1, count + 1)),
        refused=(),
        not_booked=0,
    )


@given(statements())
def test_a_statement_we_write_reads_back_as_written(statement: BankStatement) -> None:
    assert parse_camt053(camt053_xml([statement])) == (statement,)


def test_a_hand_written_statement_with_a_batch_entry() -> None:
    [statement] = parse_camt053(HAND_WRITTEN.read_bytes())
    assert (statement.statement_id, statement.account) == ("STMT-20261206", "6222000000000000001")
    assert (statement.opening_fen, statement.closing_fen) == (10_000_000, 9_987_050)
    batch, fund, fee = statement.entries
    assert (batch.bank_ref, batch.amount_fen, batch.direction) == (
        "BOC-7781-0001",
        32_950,
        Direction.DEBIT,
    )
    assert batch.batch_ref == "ONECARD-SETTLE-20261205-1"
    assert [(d.amount_fen, d.end_to_end_id, d.bank_ref) for d in batch.details] == [
        (19_900, "OC20261205-bus-1", "BOC-7781-0001-1"),
        (13_050, "OC20261205-bus-2", "BOC-7781-0001-2"),
    ]
    assert batch.details[0].counterparty_account == "6222000000000050"
    assert [i.signed_fen for i in line_items(batch)] == [-19_900, -13_050]
    assert (fund.direction, fund.value_date, fund.booking_date) == (
        Direction.CREDIT, date(2026, 12, 7), date(2026, 12, 6),
    )  # fmt: skip
    [payer] = fund.details
    assert (payer.counterparty_name, payer.counterparty_account) == (
        "City Senior Fund", "6222 0000 0000 9001",
    )  # fmt: skip
    assert payer.end_to_end_id is None  # NOTPROVIDED
    assert payer.remittance == "concession claims 2026-11-30"
    assert (fee.bank_ref, fee.info, fee.value_date) == (
        "STMT-20261206#7", "account fee", date(2026, 12, 6),
    )  # fmt: skip
    assert statement.not_booked == 1


def test_bad_entries_are_refused_with_their_reason_next_to_the_good_ones() -> None:
    [statement] = parse_camt053(HAND_WRITTEN.read_bytes())
    assert [(r.entry_no, r.bank_ref, r.reason) for r in statement.refused] == [
        (3, "BOC-7781-0003", Refusal.AMOUNT_INVALID),
        (4, "BOC-7781-0004", Refusal.CURRENCY_NOT_CNY),
        (6, "BOC-7781-0006", Refusal.DETAILS_DO_NOT_ADD_UP),
        (8, "STMT-20261206#8", Refusal.DIRECTION_INVALID),
    ]
    assert "12.345" in statement.refused[0].detail
    assert len(statement.entries) == 3


@pytest.mark.parametrize(
    ("xml", "says"),
    [
        (b"<Document", "not well-formed XML"),
        (b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:pain.001.001.09'/>", "not a camt.053"),
        (
            b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.08'><BkToCstmrStmt>"
            b"<GrpHdr><MsgId>M</MsgId></GrpHdr></BkToCstmrStmt></Document>",
            "no statement",
        ),
        (
            b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.08'><BkToCstmrStmt>"
            b"<Stmt><Id>S</Id></Stmt></BkToCstmrStmt></Document>",
            "MsgId",
        ),
        (
            b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.08'><BkToCstmrStmt>"
            b"<GrpHdr><MsgId>M</MsgId></GrpHdr><Stmt><Id>S</Id></Stmt></BkToCstmrStmt></Document>",
            "names no account",
        ),
        (
            b"<!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
            b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.08'><BkToCstmrStmt>"
            b"<GrpHdr><MsgId>&x;</MsgId></GrpHdr></BkToCstmrStmt></Document>",
            "MsgId",  # the external entity is never read
        ),
    ],
)
def test_a_malformed_file_is_refused_whole(xml: bytes, says: str) -> None:
    with pytest.raises(StatementMalformed, match=says) as refused:
        parse_camt053(xml)
    assert refused.value.code == "bank_statement_malformed"


def test_a_file_beyond_the_bound_is_refused_before_parsing() -> None:
    with pytest.raises(StatementTooLarge):
        parse_camt053(b" " * (STATEMENT_BYTES_MAX + 1))
