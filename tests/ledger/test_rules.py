"""Property tests of the pure rules (no database): any input gets a result code and never an
exception; any sequence of batches keeps debits equal to credits and every flag."""

from __future__ import annotations

from dataclasses import fields, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import rules
from ledger.types import (
    AMOUNT_MAX,
    ID_MAX,
    AccountFlags,
    CreateTransferResult,
    Transfer,
    TransferFlags,
)

R = CreateTransferResult
junk = st.one_of(
    st.integers(min_value=-(2**130), max_value=2**130),
    st.sampled_from([0, 1, ID_MAX, AMOUNT_MAX, AMOUNT_MAX + 1, -1]),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
)


@settings(max_examples=500)
@given(
    st.builds(
        Transfer,
        id=junk,
        debit_account_id=junk,
        credit_account_id=junk,
        amount=junk,
        ledger=junk,
        code=junk,
        flags=st.one_of(junk, st.integers(0, 2**16)),
        pending_id=junk,
        timeout_s=junk,
        reverses_id=junk,
        user_data_128=junk,
        user_data_64=junk,
        user_data_32=junk,
        effective_at=junk,
    )
)
def test_any_fields_get_a_result_code_and_ok_means_well_formed(t: Transfer) -> None:
    result = rules.check_transfer_fields(t)
    assert isinstance(result, CreateTransferResult)
    if result is R.OK:
        for value in (t.id, t.amount, t.ledger, t.code, t.debit_account_id, t.credit_account_id):
            assert type(value) is int and value >= 0
        assert 0 < t.id < ID_MAX and t.amount <= AMOUNT_MAX


near = st.one_of(
    st.sampled_from(
        [0, 1, 2, ID_MAX - 1, ID_MAX, AMOUNT_MAX, AMOUNT_MAX + 1, 2**32 - 1, 2**32, 2**16 - 1]
    ),
    st.sampled_from([2**16, 2**31 - 1, 2**63, -1, True, False, 0.0, 1.0, None]),
    st.integers(min_value=0, max_value=2**128),
)


FIELDS = [f.name for f in fields(Transfer)]
ordinary = st.builds(
    Transfer,
    id=st.integers(1, ID_MAX - 1),
    debit_account_id=st.integers(1, 100),
    credit_account_id=st.integers(100, 200),
    amount=st.integers(1, AMOUNT_MAX),
    ledger=st.integers(1, 2**32 - 1),
    code=st.integers(1, 2**16 - 1),
    flags=st.sampled_from([0, 1, TransferFlags.NONE, TransferFlags.LINKED]),
)
oddities = st.one_of(near, st.sampled_from([2, 3, 4, 8, 1 << 15, TransferFlags.PENDING]))


@settings(max_examples=1000)
@given(ordinary, st.dictionaries(st.sampled_from(FIELDS), oddities, max_size=2))
def test_the_fast_acceptance_of_fields_agrees_with_the_checks_in_order(
    base: Transfer, changes: dict[str, object]
) -> None:
    """`plain_fields_ok` is a shortcut: whatever it accepts, the checks one by one accept (an
    ordinary transfer with up to two fields made odd: bounds, bools, floats, other flags)."""
    t = replace(base, **changes)
    if rules.plain_fields_ok(t):
        assert rules.check_fields_in_order(t) is R.OK


def test_the_fast_acceptance_takes_ordinary_transfers() -> None:
    assert rules.plain_fields_ok(Transfer(7, 1, 2, 100, 1, 1))
    assert rules.plain_fields_ok(Transfer(7, 1, 2, 100, 1, 1, flags=TransferFlags.LINKED))
    assert not rules.plain_fields_ok(Transfer(7, 1, 2, 100, 1, 1, flags=TransferFlags.PENDING))
    assert not rules.plain_fields_ok(Transfer(7, 1, 1, 100, 1, 1))


ACCOUNTS = list(range(1, 6))
FLAGS = {
    1: 0,
    2: int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
    3: int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
    4: int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS),
    5: 0,
}

operation = st.tuples(
    st.sampled_from(["plain", "pending", "post", "void", "linked"]),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(ACCOUNTS),
    st.integers(0, 300),
    st.integers(0, 30),
)


@settings(max_examples=300)
@given(st.lists(st.lists(operation, min_size=1, max_size=6), min_size=1, max_size=8))
def test_batches_keep_debits_equal_credits_and_every_flag(batches) -> None:
    accounts = {a: rules.Balances(1, FLAGS[a], 0, 0, 0, 0) for a in ACCOUNTS}
    known: dict = {}
    failures: dict = {}
    resolutions: dict = {}
    next_id = 1000
    stamp = 1
    for operations in batches:
        transfers = []
        for kind, dr, cr, amount, ref in operations:
            next_id += 1
            if kind in ("post", "void"):
                flag = (
                    TransferFlags.POST_PENDING_TRANSFER
                    if kind == "post"
                    else (TransferFlags.VOID_PENDING_TRANSFER)
                )
                transfers.append(Transfer(next_id, 0, 0, amount, 0, 0, flag, pending_id=1000 + ref))
            else:
                flag = {
                    "plain": TransferFlags.NONE,
                    "pending": TransferFlags.PENDING,
                    "linked": TransferFlags.LINKED,
                }[kind]
                transfers.append(Transfer(next_id, dr, cr, amount, 1, 1, flag))
        batch = rules.TransferBatch(
            accounts=accounts,
            transfers=known,
            failures=failures,
            resolutions=resolutions,
            reversed_totals={},
            timestamp_first=stamp,
            timestamp_count=len(transfers),
        )
        [results] = rules.create_transfers(batch, [transfers])
        stamp += len(transfers)
        assert len(results) == len(transfers)
        totals = [0, 0, 0, 0]
        for a, b in accounts.items():
            values = b.as_tuple()
            assert min(values) >= 0
            totals = [x + y for x, y in zip(totals, values, strict=True)]
            if FLAGS[a] & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS:
                assert b.debits_pending + b.debits_posted <= b.credits_posted
            if FLAGS[a] & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS:
                assert b.credits_pending + b.credits_posted <= b.debits_posted
        assert totals[0] == totals[2] and totals[1] == totals[3]
        stamps = [row[rules.ROW_TIMESTAMP] for row in batch.rows]
        assert stamps == sorted(set(stamps))
