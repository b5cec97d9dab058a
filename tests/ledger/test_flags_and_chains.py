"""Reserved flags, linked chains and the stored `linked` flag (ledger/README.md, "Flags and
linked chains"): Hypothesis on the pure rules, then the same rules on both backends."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from ledger import rules
from ledger.types import (
    ACCOUNT_FLAGS_CLIENT,
    TRANSFER_FLAGS_CLIENT,
    TRANSFER_RESULTS_REMEMBERED,
    Account,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    Transfer,
    TransferFlags,
)
from ledger.writer import Ledger
from tests.ledger.helpers import CNY, acct, balances, setup_books, xfer

R = CreateTransferResult
A = CreateAccountResult
LINKED = TransferFlags.LINKED
BANK, CARD, SHOP, GHOST = 1, 2, 3, 99
CARD_FEN = 100  # the card's balance in the pure-rules world


def _world() -> rules.TransferBatch:
    """bank (no flags), card (may not go below zero, holds CARD_FEN), shop; no transfers."""
    dmnec = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    return rules.TransferBatch(
        accounts={
            BANK: rules.Balances(CNY, 0, 0, CARD_FEN, 0, 0),
            CARD: rules.Balances(CNY, dmnec, 0, 0, 0, CARD_FEN),
            SHOP: rules.Balances(CNY, 0, 0, 0, 0, 0),
        },
        transfers={},
        failures={},
        resolutions={},
        reversed_totals={},
        timestamp_first=1_000,
        timestamp_count=100,
    )


def _snapshot(batch: rules.TransferBatch) -> dict[int, tuple[int, int, int, int]]:
    return {a: b.as_tuple() for a, b in batch.accounts.items()}


# -- reserved flags ----------------------------------------------------------------------------


@given(flags=st.integers(0, 2**31 - 1), as_enum=st.booleans())
def test_an_account_flag_outside_the_known_ones_is_reserved(flags: int, as_enum: bool) -> None:
    value = AccountFlags(flags) if as_enum else flags
    result = rules.check_account_fields(Account(5, CNY, 1, "a", flags=value))  # type: ignore[arg-type]
    unknown = flags & ~int(ACCOUNT_FLAGS_CLIENT)
    assert (result is A.FLAGS_ARE_RESERVED) == bool(unknown)
    # Closing a chain (LINKED cleared), the reserved member fails it and nothing is created.
    closing = flags & ~int(AccountFlags.LINKED)
    closer = Account(7, CNY, 1, "c", flags=AccountFlags(closing) if as_enum else closing)  # type: ignore[arg-type]
    chain = [Account(6, CNY, 1, "b", flags=AccountFlags.LINKED), closer]
    results, created = rules.create_accounts(chain, {}, {}, {CNY})
    if unknown:
        assert results == [A.LINKED_EVENT_FAILED, A.FLAGS_ARE_RESERVED] and created == []


@given(flags=st.integers(0, 2**31 - 1), as_enum=st.booleans())
def test_a_transfer_flag_outside_the_known_ones_is_reserved(flags: int, as_enum: bool) -> None:
    value = TransferFlags(flags) if as_enum else flags
    t = Transfer(10, BANK, SHOP, 1, CNY, 1, flags=value)  # type: ignore[arg-type]
    unknown = flags & ~int(TRANSFER_FLAGS_CLIENT)
    assert (rules.check_transfer_fields(t) is R.FLAGS_ARE_RESERVED) == bool(unknown)


# -- chains ------------------------------------------------------------------------------------

# Each member kind has a code of its own, whatever the other members do.
MEMBER_CODE = {
    "stored": R.EXISTS,
    "new": R.OK,
    "changed": R.EXISTS_WITH_DIFFERENT_AMOUNT,  # stored with another amount
    "overdraft": R.EXCEEDS_CREDITS,
    "ghost": R.DEBIT_ACCOUNT_NOT_FOUND,
}


def expected_chain(codes: list[CreateTransferResult]) -> list[CreateTransferResult]:
    """The rule, written apart from ledger.rules: all `exists` is an idempotent retry; else the
    first member that is not `ok` fails the chain with its code, the others are linked_event_failed."""
    if all(c is R.EXISTS for c in codes):
        return codes
    failing = [k for k, c in enumerate(codes) if c is not R.OK]
    if not failing:
        return codes
    out = [R.LINKED_EVENT_FAILED] * len(codes)
    out[failing[0]] = codes[failing[0]]
    return out


def _member(kind: str, k: int, linked: bool) -> Transfer:
    flags = LINKED if linked else TransferFlags.NONE
    if kind == "overdraft":
        return Transfer(100 + k, CARD, SHOP, CARD_FEN + 1, CNY, 1, flags)
    if kind == "ghost":
        return Transfer(100 + k, GHOST, SHOP, 1, CNY, 1, flags)
    return Transfer(100 + k, BANK, SHOP, 1, CNY, 1, flags)


@given(kinds=st.lists(st.sampled_from(sorted(MEMBER_CODE)), min_size=2, max_size=5))
def test_a_chain_commits_only_if_every_member_is_ok_or_all_exist(kinds: list[str]) -> None:
    batch = _world()
    chain = [_member(kind, k, k < len(kinds) - 1) for k, kind in enumerate(kinds)]
    for t, kind in zip(chain, kinds, strict=True):
        if kind == "stored":
            batch.transfers[t.id] = replace(t, timestamp=1)
        elif kind == "changed":
            batch.transfers[t.id] = replace(t, amount=t.amount + 1, timestamp=1)
    before = _snapshot(batch)
    [results] = rules.create_transfers(batch, [chain])
    expected = expected_chain([MEMBER_CODE[k] for k in kinds])
    assert results == expected
    if all(r is R.OK for r in expected):
        assert [row[rules.ROW_ID] for row in batch.rows] == [t.id for t in chain]
    else:
        assert batch.rows == [] and _snapshot(batch) == before
        assert all(
            t.id not in batch.transfers for t, k in zip(chain, kinds, strict=True) if k == "new"
        )
    remembered = [
        t.id for t, r in zip(chain, results, strict=True) if r in TRANSFER_RESULTS_REMEMBERED
    ]
    assert [t.id for t, _ in batch.new_failures] == remembered


ACCOUNT_CODE = {
    "stored": A.EXISTS,
    "new": A.OK,
    "changed": A.EXISTS_WITH_DIFFERENT_CODE,
    "no_ledger": A.LEDGER_NOT_FOUND,
}


@given(kinds=st.lists(st.sampled_from(sorted(ACCOUNT_CODE)), min_size=2, max_size=5))
def test_an_account_chain_follows_the_same_rule(kinds: list[str]) -> None:
    chain = []
    existing: dict[int, Account] = {}
    for k, kind in enumerate(kinds):
        flags = AccountFlags.LINKED if k < len(kinds) - 1 else AccountFlags.NONE
        a = Account(10 + k, 7 if kind == "no_ledger" else CNY, 1, f"a{k}", flags=flags)
        chain.append(a)
        if kind == "stored":
            existing[a.id] = a
        elif kind == "changed":
            existing[a.id] = replace(a, code=2)
    names = {a.name: a.id for a in existing.values()}
    results, created = rules.create_accounts(chain, existing, names, {CNY})
    codes = [ACCOUNT_CODE[k] for k in kinds]
    if all(c is A.EXISTS for c in codes) or all(c is A.OK for c in codes):
        assert results == codes
    else:
        first = next(k for k, c in enumerate(codes) if c is not A.OK)
        expected = [A.LINKED_EVENT_FAILED] * len(codes)
        expected[first] = codes[first]
        assert results == expected
    assert created == (chain if all(c is A.OK for c in codes) else [])


# -- linked is stored and compared -------------------------------------------------------------


@given(linked=st.booleans(), overdraft=st.booleans())
def test_linked_is_stored_and_a_retry_differing_only_in_linked_is_refused(
    linked: bool, overdraft: bool
) -> None:
    batch = _world()
    closer = Transfer(200, BANK, SHOP, 1, CNY, 1)

    def submit(t: Transfer) -> CreateTransferResult:
        """`t` alone, or as the head of a chain closed by `closer` if it is linked."""
        [results] = rules.create_transfers(batch, [[t, closer] if t.flags & LINKED else [t]])
        return results[0]

    t = _member("overdraft" if overdraft else "new", 0, linked)
    toggled = replace(t, flags=TransferFlags(int(t.flags) ^ int(LINKED)))
    first = submit(t)
    if overdraft:
        # A remembered failure, with its flags: the same submission fails the same way.
        assert first is R.EXCEEDS_CREDITS
        assert bool(batch.failures[t.id][0].flags & LINKED) == linked
        assert submit(t) is R.EXCEEDS_CREDITS
        assert submit(toggled) is R.ID_ALREADY_FAILED
    else:
        assert first is R.OK
        assert bool(batch.transfers[t.id].flags & LINKED) == linked
        assert submit(t) is R.EXISTS
        assert submit(toggled) is R.EXISTS_WITH_DIFFERENT_FLAGS


@given(linked=st.booleans())
def test_an_account_retry_differing_only_in_linked_is_refused(linked: bool) -> None:
    flags = AccountFlags.LINKED if linked else AccountFlags.NONE
    a = Account(10, CNY, 1, "a", flags=flags)
    closer = Account(11, CNY, 1, "b")
    results, created = rules.create_accounts([a, closer] if linked else [a], {}, {}, {CNY})
    assert all(r is A.OK for r in results)
    stored = {x.id: x for x in created}
    assert bool(stored[a.id].flags & AccountFlags.LINKED) == linked
    names = {x.name: x.id for x in created}
    retry, _ = rules.create_accounts([replace(a, flags=AccountFlags.NONE)], stored, names, {CNY})
    assert retry == [A.EXISTS_WITH_DIFFERENT_FLAGS if linked else A.EXISTS]


# -- the same rules on both backends -----------------------------------------------------------


async def test_account_flag_8_is_reserved_and_fails_its_chain(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        await setup_books(led, ns)
        odd = acct(ns, "odd", flags=AccountFlags(8))
        assert await led.create_accounts([odd]) == [A.FLAGS_ARE_RESERVED]
        member = acct(ns, "member", flags=AccountFlags.LINKED)
        assert await led.create_accounts([member, odd]) == [
            A.LINKED_EVENT_FAILED,
            A.FLAGS_ARE_RESERVED,
        ]
        assert await led.reader.lookup_accounts([odd.id, member.id]) == []


async def test_transfer_flag_outside_the_known_ones_is_reserved(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        for bit in (1 << 4, int(TransferFlags.EXPIRED)):
            t = xfer(ns, f"odd{bit}", b["bank"], b["merchant"], 1, flags=TransferFlags(bit))
            assert await led.create_transfers([t]) == [R.FLAGS_ARE_RESERVED]
        assert await balances(led, b["merchant"]) == (0, 0, 0, 0)


async def test_a_chain_mixing_a_stored_member_with_new_ones_commits_nothing(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        t10 = xfer(ns, "t10", b["bank"], b["merchant"], 10, flags=LINKED)
        t11 = xfer(ns, "t11", b["bank"], b["merchant"], 11)
        assert await led.create_transfers([t10, t11]) == [R.OK, R.OK]
        t12 = xfer(ns, "t12", b["bank"], b["merchant"], 12)
        assert await led.create_transfers([t10, t12]) == [R.EXISTS, R.LINKED_EVENT_FAILED]
        t13 = xfer(ns, "t13", b["bank"], b["merchant"], 13, flags=LINKED)
        assert await led.create_transfers([t13, t11]) == [R.LINKED_EVENT_FAILED, R.EXISTS]
        assert await led.reader.lookup_transfers([t12.id, t13.id]) == []
        assert await balances(led, b["merchant"]) == (0, 0, 0, 21)
        # Retried whole, every member stored with the same fields: an idempotent retry.
        assert await led.create_transfers([t10, t11]) == [R.EXISTS, R.EXISTS]
        # The new members were not remembered as failures: on their own they go through.
        assert await led.create_transfers([t12]) == [R.OK]
        assert await balances(led, b["merchant"]) == (0, 0, 0, 33)


async def test_linked_is_stored_and_compared_on_transfers(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        b = await setup_books(led, ns)
        head = xfer(ns, "head", b["bank"], b["merchant"], 5, flags=LINKED)
        tail = xfer(ns, "tail", b["bank"], b["merchant"], 5)
        assert await led.create_transfers([head, tail]) == [R.OK, R.OK]
        stored = {t.id: t for t in await led.reader.lookup_transfers([head.id, tail.id])}
        assert stored[head.id].flags == LINKED and stored[tail.id].flags == TransferFlags.NONE
        unlinked = replace(head, flags=TransferFlags.NONE)
        assert await led.create_transfers([unlinked]) == [R.EXISTS_WITH_DIFFERENT_FLAGS]
        # A remembered failure: the same chain fails the same way, the toggle is id_already_failed.
        spend = xfer(ns, "spend", b["card"], b["merchant"], 1, flags=LINKED)
        closer = xfer(ns, "closer", b["bank"], b["merchant"], 1)
        assert await led.create_transfers([spend, closer]) == [
            R.EXCEEDS_CREDITS,
            R.LINKED_EVENT_FAILED,
        ]
        assert await led.create_transfers([spend, closer]) == [
            R.EXCEEDS_CREDITS,
            R.LINKED_EVENT_FAILED,
        ]
        alone = replace(spend, flags=TransferFlags.NONE)
        assert await led.create_transfers([alone]) == [R.ID_ALREADY_FAILED]


async def test_linked_is_stored_and_compared_on_accounts(ledger_url, ns):
    async with await Ledger.open(ledger_url) as led:
        await setup_books(led, ns)
        head = acct(ns, "head", flags=AccountFlags.LINKED)
        tail = acct(ns, "tail")
        assert await led.create_accounts([head, tail]) == [A.OK, A.OK]
        [state] = await led.reader.lookup_accounts([head.id])
        assert state.account.flags == AccountFlags.LINKED
        assert await led.create_accounts([replace(head, flags=AccountFlags.NONE)]) == [
            A.EXISTS_WITH_DIFFERENT_FLAGS
        ]
        assert await led.create_accounts([head, tail]) == [A.EXISTS, A.EXISTS]
        fresh = acct(ns, "fresh", flags=AccountFlags.LINKED)
        assert await led.create_accounts([fresh, tail]) == [A.LINKED_EVENT_FAILED, A.EXISTS]
        assert await led.reader.lookup_accounts([fresh.id]) == []
