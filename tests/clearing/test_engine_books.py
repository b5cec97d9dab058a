"""The chart of accounts as code: names, kinds, flags and transfer codes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearing import books
from clearing.books import AccountKind, AccountType, InvalidAccountName, TransferCode
from ledger import AccountFlags, account_id

card_nos = st.from_regex(r"\A[0-9]{16}\Z")
slugs = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


@given(card_nos)
def test_card_accounts_round_trip_and_never_overdraw(card_no: str) -> None:
    for make, account_type in (
        (books.card, AccountType.CARD),
        (books.card_pending, AccountType.CARD_PENDING),
        (books.card_deposit, AccountType.CARD_DEPOSIT),
    ):
        name = make(card_no)
        assert books.parse_account(name) == (account_type, card_no)
        assert books.card_no_of(name) == card_no
        spec = books.account_spec(name)
        assert spec.kind is AccountKind.LIABILITY
        assert spec.debits_must_not_exceed_credits
        account = books.account_of(name)
        assert account.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
        assert account.id == account_id(name)
        assert account.code == int(account_type)


@given(slugs)
def test_participant_and_scheme_accounts_round_trip(key: str) -> None:
    assert books.parse_account(books.payable(key)) == (AccountType.PAYABLE, key)
    assert books.account_spec(books.insurer(key)).kind is AccountKind.ASSET
    assert books.account_spec(books.subsidy(key)).kind is AccountKind.ASSET
    assert books.account_spec(books.suspense(key)).kind is AccountKind.LIABILITY


@pytest.mark.parametrize(
    "bad", ["", "123", "31000000000000011", "310000000000000a", " 3100000000000001"]
)
def test_malformed_card_numbers_are_refused(bad: str) -> None:
    with pytest.raises(InvalidAccountName):
        books.card(bad)


@pytest.mark.parametrize("bad", ["", "-bus", "bus 1", "bus:1", "x" * 65, "公交"])
def test_malformed_participants_are_refused(bad: str) -> None:
    with pytest.raises(InvalidAccountName):
        books.payable(bad)


@pytest.mark.parametrize("bad", ["card:12", "nope:x", "bank:vault", "payable:", "revenue"])
def test_names_outside_the_chart_are_refused(bad: str) -> None:
    with pytest.raises(InvalidAccountName):
        books.account_spec(bad)


def test_fixed_accounts_have_their_kinds() -> None:
    assert books.account_spec(books.BANK_ESCROW).kind is AccountKind.ASSET
    assert books.account_spec(books.REVENUE_COMMISSION).kind is AccountKind.REVENUE
    assert books.account_spec(books.EXPENSE_PSP_FEES).kind is AccountKind.EXPENSE
    assert not books.account_spec(books.BANK_ESCROW).debits_must_not_exceed_credits


def test_transfer_codes_are_unique_and_fit_the_ledger() -> None:
    values = [int(code) for code in TransferCode]
    assert len(values) == len(set(values))
    assert all(0 < value < 2**16 for value in values)
