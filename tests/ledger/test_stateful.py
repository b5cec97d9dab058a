"""Hypothesis stateful test: the ledger against a small in-memory model, on SQLite and PostgreSQL.

Random transfers, linked chains (some mixing earlier submissions with new members), pending/post/
void with partial amounts, expiry, reversals, spends and credits at the exact edge of a
must-not-exceed limit (pending counted), reserved flags, and replays of earlier submissions (some
with `linked` toggled). The model computes the expected result code of every transfer (`ok` where
it is legal) and each step compares it with the ledger's. After every step: balances equal the
model's and the sum of their transfers, total debits equal total credits, every must-not-exceed
flag holds, and each entry's balance-before is the previous entry's balance-after. The model is
written independently of ledger.rules, from the behaviour ledger/README.md states.
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from ledger.types import (
    TRANSFER_RESULTS_REMEMBERED,
    AccountFlags,
    CreateTransferResult,
    Transfer,
    TransferFlags,
)
from ledger.writer import Ledger
from tests.ledger.helpers import CNY, acct, setup_books

R = CreateTransferResult
PENDING = TransferFlags.PENDING
POST = TransferFlags.POST_PENDING_TRANSFER
VOID = TransferFlags.VOID_PENDING_TRANSFER
LINKED = TransferFlags.LINKED
TIMEOUT_S = 3600
NAMES = ("bank", "card", "card2", "merchant", "limit")
DMNEC = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
CMNED = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
KNOWN_FLAGS = int(LINKED | PENDING | POST | VOID)


@dataclass
class Model:
    flags: dict[int, int] = field(default_factory=dict)
    bal: dict[int, list[int]] = field(default_factory=dict)  # dp, dpo, cp, cpo
    transfers: dict[int, Transfer] = field(default_factory=dict)
    status: dict[int, str] = field(default_factory=dict)  # pending id -> posted/voided/expired
    reversed: dict[int, int] = field(default_factory=dict)
    failures: dict[int, tuple[Transfer, CreateTransferResult]] = field(default_factory=dict)
    submitted: dict[int, Transfer] = field(default_factory=dict)  # id -> the accepted submission

    def apply(self, t: Transfer) -> CreateTransferResult:
        if int(t.flags) & ~KNOWN_FLAGS:
            return R.FLAGS_ARE_RESERVED
        if t.id in self.transfers:
            # Only `linked` is ever varied on a retry here; it is stored and compared.
            same = int(t.flags) == int(self.submitted[t.id].flags)
            return R.EXISTS if same else R.EXISTS_WITH_DIFFERENT_FLAGS
        if t.id in self.failures:
            original, code = self.failures[t.id]
            return code if original == t else R.ID_ALREADY_FAILED
        result = self._apply_new(t)
        if result is R.OK:
            self.submitted[t.id] = t
        return result

    def _apply_new(self, t: Transfer) -> CreateTransferResult:
        if t.flags & (POST | VOID):
            p = self.transfers.get(t.pending_id)
            if p is None:
                return R.PENDING_TRANSFER_NOT_FOUND
            if not p.flags & PENDING:
                return R.PENDING_TRANSFER_NOT_PENDING
            if t.amount > p.amount:
                return R.EXCEEDS_PENDING_TRANSFER_AMOUNT
            if t.flags & VOID and t.amount not in (0, p.amount):
                return R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
            state = self.status.get(p.id)
            if state is not None:
                return {
                    "posted": R.PENDING_TRANSFER_ALREADY_POSTED,
                    "voided": R.PENDING_TRANSFER_ALREADY_VOIDED,
                    "expired": R.PENDING_TRANSFER_EXPIRED,
                }[state]
            self._release(p)
            if t.flags & POST:
                amount = t.amount or p.amount
                self.bal[p.debit_account_id][1] += amount
                self.bal[p.credit_account_id][3] += amount
                self.status[p.id] = "posted"
                stored = Transfer(
                    t.id, p.debit_account_id, p.credit_account_id, amount, CNY, 1, POST, p.id
                )
            else:
                self.status[p.id] = "voided"
                stored = Transfer(
                    t.id, p.debit_account_id, p.credit_account_id, p.amount, CNY, 1, VOID, p.id
                )
            self.transfers[t.id] = stored
            return R.OK
        if t.debit_account_id not in self.bal:
            return R.DEBIT_ACCOUNT_NOT_FOUND
        if t.credit_account_id not in self.bal:
            return R.CREDIT_ACCOUNT_NOT_FOUND
        if t.reverses_id:
            o = self.transfers.get(t.reverses_id)
            if o is None:
                return R.REVERSED_TRANSFER_NOT_FOUND
            if o.flags & (PENDING | VOID):
                return R.REVERSED_TRANSFER_NOT_POSTED
            if (t.debit_account_id, t.credit_account_id) != (
                o.credit_account_id,
                o.debit_account_id,
            ):
                return R.REVERSAL_MUST_SWAP_ACCOUNTS
            if t.amount > o.amount - self.reversed.get(o.id, 0):
                return R.EXCEEDS_REVERSIBLE_AMOUNT
        dr, cr = self.bal[t.debit_account_id], self.bal[t.credit_account_id]
        if self.flags[t.debit_account_id] & DMNEC and dr[0] + dr[1] + t.amount > dr[3]:
            return R.EXCEEDS_CREDITS
        if self.flags[t.credit_account_id] & CMNED and cr[2] + cr[3] + t.amount > cr[1]:
            return R.EXCEEDS_DEBITS
        if t.flags & PENDING:
            dr[0] += t.amount
            cr[2] += t.amount
        else:
            dr[1] += t.amount
            cr[3] += t.amount
        if t.reverses_id:
            self.reversed[t.reverses_id] = self.reversed.get(t.reverses_id, 0) + t.amount
        self.transfers[t.id] = Transfer(
            t.id,
            t.debit_account_id,
            t.credit_account_id,
            t.amount,
            CNY,
            1,
            t.flags & ~LINKED,
            timeout_s=t.timeout_s,
        )
        return R.OK

    def _release(self, p: Transfer) -> None:
        self.bal[p.debit_account_id][0] -= p.amount
        self.bal[p.credit_account_id][2] -= p.amount

    def submit(self, batch: list[Transfer]) -> list[CreateTransferResult]:
        """Apply a batch: single items one by one, linked chains all or nothing."""
        results: list[CreateTransferResult] = []
        i = 0
        while i < len(batch):
            j = i
            while j < len(batch) and batch[j].flags & LINKED:
                j += 1
            if j == len(batch):  # the last item is linked: the chain is open
                results += [R.LINKED_EVENT_FAILED] * (j - 1 - i) + [R.LINKED_EVENT_CHAIN_OPEN]
                break
            results.extend(self._chain(batch[i : j + 1]))
            i = j + 1
        return results

    def _chain(self, chain: list[Transfer]) -> list[CreateTransferResult]:
        """Every member `ok`: applied. Every member `exists`: an idempotent retry. Otherwise the
        first member that is not `ok` fails the chain with its code, the others get
        linked_event_failed, and nothing is applied."""
        trial = copy.deepcopy(self)
        codes = []
        for t in chain:
            codes.append(trial.apply(t))
            if codes[-1] not in (R.OK, R.EXISTS):
                break
        if len(codes) == len(chain) and (
            all(c is R.OK for c in codes) or all(c is R.EXISTS for c in codes)
        ):
            self.__dict__.update(trial.__dict__)
            return codes
        failed = next(k for k, c in enumerate(codes) if c is not R.OK)
        code, failing = codes[failed], chain[failed]
        if code in TRANSFER_RESULTS_REMEMBERED and failing.id not in self.failures:
            self.failures[failing.id] = (failing, code)
        out = [R.LINKED_EVENT_FAILED] * len(chain)
        out[failed] = code
        return out

    def expire_all(self) -> None:
        for pid, p in self.transfers.items():
            if p.flags & PENDING and p.timeout_s and pid not in self.status:
                self._release(p)
                self.status[pid] = "expired"


class Clock:
    def __init__(self) -> None:
        self.offset_ns = 0

    def __call__(self) -> int:
        return time.time_ns() + self.offset_ns


def make_machine(url: str, loop: asyncio.AbstractEventLoop) -> type[RuleBasedStateMachine]:
    clock = Clock()

    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.ns = uuid.uuid4().hex[:10]
            self.led = self._run(Ledger.open(url, clock_ns=clock))
            books = self._run(setup_books(self.led, self.ns))
            self.accounts = [books[n] for n in NAMES]
            self.ghost = acct(self.ns, "ghost")
            self.model = Model()
            for a in self.accounts:
                self.model.flags[a.id] = int(a.flags)
                self.model.bal[a.id] = [0, 0, 0, 0]
            self.submissions: list[tuple[list[Transfer], list[CreateTransferResult]]] = []
            # Keep the wall clock at or past the ledger's clock, so jumps reach deadlines.
            last = self._run(self._ledger_clock())
            clock.offset_ns = max(clock.offset_ns, last - time.time_ns())

        async def _ledger_clock(self) -> int:
            async with self.led.engine.connect() as conn:
                return (await conn.execute(text("SELECT last_ns FROM ledger_clock"))).scalar_one()

        def _run(self, coro):  # type: ignore[no-untyped-def]
            return loop.run_until_complete(coro)

        def teardown(self) -> None:
            self._run(self.led.close())

        def _id(self) -> int:
            return uuid.uuid4().int % 2**127 + 1

        def _submit(self, batch: list[Transfer]) -> list[CreateTransferResult]:
            expected = self.model.submit(batch)
            got = self._run(self.led.create_transfers(batch))
            assert got == expected, (batch, got, expected)
            self.submissions.append((batch, got))
            return got

        def _plain(self, data: st.DataObject, *, linked: bool = False) -> Transfer:
            # Mostly known accounts; now and then the ghost (an account never created).
            choices = (
                [*self.accounts, self.ghost]
                if data.draw(st.integers(0, 9)) == 0
                else [*self.accounts]
            )
            dr = data.draw(st.sampled_from(choices))
            cr = data.draw(st.sampled_from([a for a in choices if a is not dr]))
            amount = data.draw(st.integers(1, 1_000))
            pending = data.draw(st.booleans())
            timeout = data.draw(st.sampled_from([0, TIMEOUT_S])) if pending else 0
            flags = (PENDING if pending else TransferFlags.NONE) | (LINKED if linked else 0)
            return Transfer(
                self._id(), dr.id, cr.id, amount, CNY, 1, TransferFlags(flags), timeout_s=timeout
            )

        @rule(card=st.sampled_from([1, 2]), amount=st.integers(500, 3_000))
        def load_a_card(self, card: int, amount: int) -> None:
            bank, target = self.accounts[0], self.accounts[card]
            self._submit([Transfer(self._id(), bank.id, target.id, amount, CNY, 1)])

        @rule(data=st.data())
        def transfer(self, data: st.DataObject) -> None:
            self._submit([self._plain(data)])

        @rule(data=st.data(), size=st.integers(2, 4))
        def linked_chain(self, data: st.DataObject, size: int) -> None:
            chain = [self._plain(data, linked=k < size - 1) for k in range(size)]
            self._submit(chain)

        @precondition(lambda self: any(t.flags & PENDING for t in self.model.transfers.values()))
        @rule(data=st.data())
        def post_or_void(self, data: st.DataObject) -> None:
            pendings = [t for t in self.model.transfers.values() if t.flags & PENDING]
            p = data.draw(st.sampled_from(pendings))
            kind = data.draw(st.sampled_from([POST, VOID]))
            amount = data.draw(st.sampled_from([0, p.amount, max(1, p.amount // 2), p.amount + 1]))
            self._submit([Transfer(self._id(), 0, 0, amount, 0, 0, kind, pending_id=p.id)])

        @precondition(lambda self: bool(self.model.transfers))
        @rule(data=st.data())
        def reverse(self, data: st.DataObject) -> None:
            originals = list(self.model.transfers.values())
            o = data.draw(st.sampled_from(originals))
            swap = data.draw(st.booleans())
            dr, cr = (
                (o.credit_account_id, o.debit_account_id)
                if swap
                else (o.debit_account_id, o.credit_account_id)
            )
            amount = data.draw(st.integers(1, o.amount + 1))
            self._submit([Transfer(self._id(), dr, cr, amount, CNY, 1, reverses_id=o.id)])

        @precondition(lambda self: bool(self.submissions))
        @rule(data=st.data())
        def replay(self, data: st.DataObject) -> None:
            batch, first = data.draw(st.sampled_from(self.submissions))
            before = copy.deepcopy(self.model.bal)
            expected = self.model.submit(batch)
            got = self._run(self.led.create_transfers(batch))
            assert got == expected, (batch, got, expected)
            if len(batch) == 1:
                assert got == [R.EXISTS if first[0] in (R.OK, R.EXISTS) else first[0]]
            elif all(r in (R.OK, R.EXISTS) for r in first):
                assert got == [R.EXISTS] * len(batch)
            else:
                assert R.OK not in got  # a chain that failed fails again: nothing applied
            assert self.model.bal == before

        # -- the edges of the limits: the exact room, one fen less or more, pending counted ----

        @rule(card=st.sampled_from([1, 2]), delta=st.sampled_from([-1, 0, 0, 1]), data=st.data())
        def spend_to_the_edge(self, card: int, delta: int, data: st.DataObject) -> None:
            """Debit a card (debits may not exceed credits) by its room + delta."""
            spender, shop = self.accounts[card], self.accounts[3]
            dp, dpo, _, cpo = self.model.bal[spender.id]
            amount = max(1, cpo - dpo - dp + delta)
            flags = data.draw(st.sampled_from([TransferFlags.NONE, PENDING]))
            self._submit([Transfer(self._id(), spender.id, shop.id, amount, CNY, 1, flags)])

        @rule(amount=st.integers(1, 3_000))
        def draw_on_the_limit(self, amount: int) -> None:
            """Debit the limit account (credits may not exceed debits): room for credits."""
            limit, bank = self.accounts[4], self.accounts[0]
            self._submit([Transfer(self._id(), limit.id, bank.id, amount, CNY, 1)])

        @rule(delta=st.sampled_from([-1, 0, 0, 1]), data=st.data())
        def credit_to_the_edge(self, delta: int, data: st.DataObject) -> None:
            """Credit the limit account by its room + delta."""
            limit, bank = self.accounts[4], self.accounts[0]
            _, dpo, cp, cpo = self.model.bal[limit.id]
            amount = max(1, dpo - cpo - cp + delta)
            flags = data.draw(st.sampled_from([TransferFlags.NONE, PENDING]))
            self._submit([Transfer(self._id(), bank.id, limit.id, amount, CNY, 1, flags)])

        # -- chains that mix earlier submissions with new members; linked toggled ----------------

        @precondition(lambda self: bool(self.model.submitted or self.model.failures))
        @rule(data=st.data(), head=st.booleans())
        def chain_with_an_earlier_submission(self, data: st.DataObject, head: bool) -> None:
            """An earlier submission (stored or remembered failure) as the head of a chain (made
            linked) or its tail (made unlinked), with a new member: linked may thus differ."""
            earlier = [*self.model.submitted.values()] + [
                t for t, _ in self.model.failures.values()
            ]
            old = data.draw(st.sampled_from(earlier))
            if head:
                member = replace(old, flags=old.flags | LINKED)
                self._submit([member, self._plain(data)])
            else:
                member = replace(old, flags=old.flags & ~LINKED)
                self._submit([self._plain(data, linked=True), member])

        @rule(data=st.data(), bit=st.sampled_from([1 << 4, 1 << 7, 1 << 14, 1 << 15]))
        def reserved_flag(self, data: st.DataObject, bit: int) -> None:
            """A flag outside the known ones, alone or closing a chain."""
            t = self._plain(data)
            odd = replace(t, flags=TransferFlags(int(t.flags) | bit))
            chained = data.draw(st.booleans())
            self._submit([self._plain(data, linked=True), odd] if chained else [odd])

        @rule()
        def time_passes_beyond_every_timeout(self) -> None:
            clock.offset_ns += (2 * TIMEOUT_S + 1) * 10**9
            self._run(self.led.expire_pending_transfers())
            self.model.expire_all()

        @invariant()
        def balances_match_the_model_and_the_laws(self) -> None:
            states = self._run(self.led.reader.lookup_accounts([a.id for a in self.accounts]))
            totals = [0, 0, 0, 0]
            for s in states:
                b = s.balance
                have = [b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted]
                assert have == self.model.bal[s.id], (s.name, have, self.model.bal[s.id])
                totals = [x + y for x, y in zip(totals, have, strict=True)]
                if s.account.flags & DMNEC:
                    assert b.debits_pending + b.debits_posted <= b.credits_posted
                if s.account.flags & CMNED:
                    assert b.credits_pending + b.credits_posted <= b.debits_posted
            assert totals[0] == totals[2] and totals[1] == totals[3]

        @invariant()
        def balances_equal_the_sum_of_their_entries(self) -> None:
            for a in self.accounts:
                page = self._run(self.led.reader.get_account_history(a.id, limit=8190))
                recomputed = [0, 0, 0, 0]
                previous_after = None
                for e in page.entries:
                    t = e.transfer
                    side = 0 if e.is_debit else 2
                    if t.flags & PENDING:
                        recomputed[side] += t.amount
                    elif t.pending_id:
                        recomputed[side] -= self.model.transfers[t.pending_id].amount
                        if t.flags & POST:
                            recomputed[side + 1] += t.amount
                    else:
                        recomputed[side + 1] += t.amount
                    if previous_after is not None:
                        assert e.balance_before == previous_after
                    after = e.balance_after
                    assert [
                        after.debits_pending,
                        after.debits_posted,
                        after.credits_pending,
                        after.credits_posted,
                    ] == recomputed
                    previous_after = after
                assert recomputed == self.model.bal[a.id]

    return LedgerMachine


STATEFUL = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _run_machine(url: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        run_state_machine_as_test(make_machine(url, loop), settings=STATEFUL)
    finally:
        loop.close()


def test_ledger_matches_the_model_on_sqlite(sqlite_url: str) -> None:
    _run_machine(sqlite_url)


def test_ledger_matches_the_model_on_postgresql(fresh_pg_url: str) -> None:
    # A database of its own: the machine moves the ledger's clock hours ahead to expire
    # pending transfers, which must not leak into the shared test database.
    _run_machine(fresh_pg_url)
