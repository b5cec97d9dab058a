"""The ledger's rules: validation of accounts and transfers, result precedence, balance effects.

Pure: no I/O. Both backends load the state a batch needs into a `TransferBatch`, run these rules
in memory (under the locks they hold) and write back what they return, so PostgreSQL and SQLite
obey exactly the same rules. Never import a database driver here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from ledger.errors import invariant
from ledger.ids import expiry_id
from ledger.types import (
    ACCOUNT_FLAGS_CLIENT,
    AMOUNT_MAX,
    CODE_MAX,
    ID_MAX,
    LEDGER_ID_MAX,
    TIMEOUT_S_MAX,
    TRANSFER_FLAGS_CLIENT,
    TRANSFER_RESULTS_REMEMBERED,
    USER_DATA_32_MAX,
    USER_DATA_64_MAX,
    Account,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    Transfer,
    TransferFlags,
)

ACCOUNT_NAME_MAX = 200
EFFECTIVE_AT_MAX = 2**63 - 1
NS_PER_S = 1_000_000_000

TR = CreateTransferResult
AR = CreateAccountResult
# Flags as plain ints: IntFlag arithmetic costs a microsecond per operation, and the rules run
# per transfer on batches of 8,190 (measured: a third of the rules' time was enum operators).
_LINKED = int(TransferFlags.LINKED)
_PENDING = int(TransferFlags.PENDING)
_POST = int(TransferFlags.POST_PENDING_TRANSFER)
_VOID = int(TransferFlags.VOID_PENDING_TRANSFER)
_EXPIRED = int(TransferFlags.EXPIRED)
_RESOLVING = _POST | _VOID
_TWO_PHASE = _PENDING | _POST | _VOID
_CLIENT_FLAGS = int(TRANSFER_FLAGS_CLIENT)
_ACCOUNT_CLIENT_FLAGS = int(ACCOUNT_FLAGS_CLIENT)
_DEBITS_MUST_NOT_EXCEED_CREDITS = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
# The types a transfer's flags take on the fast path (exact int or the enum, never bool).
_FLAG_TYPES = frozenset((int, TransferFlags))
_CREDITS_MUST_NOT_EXCEED_DEBITS = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)


def _is_int(value: object) -> bool:
    # `type(...) is int` first: the common case, and much cheaper than two isinstance calls.
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _id_ok(value: object) -> bool:
    """An optional id field: an int in 0 .. ID_MAX-1 (0 = none)."""
    return _is_int(value) and 0 <= value < ID_MAX  # type: ignore[operator]


def _in_range(value: object, high: int) -> bool:
    return _is_int(value) and 0 <= value <= high  # type: ignore[operator]


@dataclass(slots=True)
class Balances:
    """Working copy of one locked account: its ledger, flags and four balances."""

    ledger: int
    flags: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int

    def copy(self) -> Balances:
        return Balances(
            self.ledger,
            self.flags,
            self.debits_pending,
            self.debits_posted,
            self.credits_pending,
            self.credits_posted,
        )

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)


# A transfer accepted by a batch, as the row the backends store: the 15 transfer fields in
# `ledger.tables.TRANSFER_COLUMNS` order as ints (0 = none for the optional ids and
# effective_at, flags as a plain int), then the debit account's and the credit account's four
# balances right after it. A plain tuple: one is made per accepted transfer, and a dataclass
# costs ten times as much to make.
PostedRow = tuple[int, ...]
ROW_ID = 0
ROW_FLAGS = 8
ROW_TIMESTAMP = 14


def _row(t: Transfer, flags: int, timestamp: int, dr: Balances, cr: Balances) -> PostedRow:
    return (
        t.id,
        t.debit_account_id,
        t.credit_account_id,
        t.amount,
        t.pending_id,
        t.reverses_id,
        t.ledger,
        t.code,
        flags,
        t.timeout_s,
        t.user_data_128,
        t.user_data_64,
        t.user_data_32,
        t.effective_at,
        timestamp,
        dr.debits_pending,
        dr.debits_posted,
        dr.credits_pending,
        dr.credits_posted,
        cr.debits_pending,
        cr.debits_posted,
        cr.credits_pending,
        cr.credits_posted,
    )


@dataclass(slots=True)
class TransferBatch:
    """Everything one batch needs, loaded by the backend under its locks, then mutated here.

    Inputs: `accounts` (locked, by id), `transfers` (stored transfers the batch may refer to:
    the batch's own ids, pending transfers named by pending_id, originals named by reverses_id),
    `failures` (remembered failed ids), `resolutions` (pending id -> flags of the row that
    resolved it), `reversed_totals` (original id -> sum already reversed), and `timestamps` (a reserved, strictly increasing range).
    Outputs: `rows`, `new_failures`, `deadlines_added`, `deadlines_removed`, `touched`.
    """

    accounts: dict[int, Balances]
    transfers: dict[int, Transfer]
    failures: dict[int, tuple[Transfer, CreateTransferResult]]
    resolutions: dict[int, int]
    reversed_totals: dict[int, int]
    timestamp_first: int
    timestamp_count: int
    rows: list[PostedRow] = field(default_factory=list)
    new_failures: list[tuple[Transfer, CreateTransferResult]] = field(default_factory=list)
    deadlines_added: list[tuple[int, int]] = field(default_factory=list)
    deadlines_removed: list[int] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)
    _next_timestamp: int = 0
    _undo: list[Callable[[], None]] | None = None

    def __post_init__(self) -> None:
        self._next_timestamp = self.timestamp_first

    def take_timestamp(self) -> int:
        invariant(
            self._next_timestamp < self.timestamp_first + self.timestamp_count,
            "batch used more timestamps than it reserved",
        )
        value = self._next_timestamp
        self._next_timestamp += 1
        return value

    # -- the undo journal of an open linked chain --------------------------------------------

    def _remember_balance(self, account_id: int) -> None:
        self.touched.add(account_id)
        if self._undo is not None:
            saved = self.accounts[account_id].copy()
            self._undo.append(lambda: self.accounts.__setitem__(account_id, saved))

    def _set(self, mapping: dict, key: int, value: object) -> None:  # type: ignore[type-arg]
        if self._undo is not None:
            if key in mapping:
                old = mapping[key]
                self._undo.append(lambda: mapping.__setitem__(key, old))
            else:
                self._undo.append(lambda: mapping.pop(key, None))
        mapping[key] = value

    def _append(self, items: list, value: object) -> None:  # type: ignore[type-arg]
        items.append(value)
        if self._undo is not None:
            self._undo.append(items.pop)


def pending_expires_at(pending: Transfer) -> int:
    """When a pending transfer with a timeout expires (ledger nanoseconds); 0 = never."""
    return pending.timestamp + pending.timeout_s * NS_PER_S if pending.timeout_s else 0


def resolution_result(flags: int) -> CreateTransferResult:
    if flags & _EXPIRED:
        return TR.PENDING_TRANSFER_EXPIRED
    if flags & _POST:
        return TR.PENDING_TRANSFER_ALREADY_POSTED
    return TR.PENDING_TRANSFER_ALREADY_VOIDED


# -- transfers: checks that need no state ------------------------------------------------------


def plain_fields_ok(t: Transfer) -> bool:
    """The common case in one expression: a plain (or linked) transfer whose every field is an
    exact int within bounds, as `check_transfer_fields` would accept it. False only means
    "decide the slow way" (the checks below, in precedence order)."""
    flags = t.flags
    debit = t.debit_account_id
    credit = t.credit_account_id
    return (
        (flags == 0 or flags == _LINKED)
        and type(flags) in _FLAG_TYPES
        and t.timestamp == 0
        and type(t.id) is int
        and 0 < t.id < ID_MAX
        and type(debit) is int
        and type(credit) is int
        and 0 < debit < ID_MAX
        and 0 < credit < ID_MAX
        and debit != credit
        and t.pending_id == 0
        and t.reverses_id == 0
        and t.timeout_s == 0
        and type(t.pending_id) is int
        and type(t.reverses_id) is int
        and type(t.timeout_s) is int
        and type(t.amount) is int
        and 0 < t.amount <= AMOUNT_MAX
        and type(t.ledger) is int
        and 0 < t.ledger <= LEDGER_ID_MAX
        and type(t.code) is int
        and 0 < t.code <= CODE_MAX
        and type(t.user_data_128) is int
        and 0 <= t.user_data_128 < ID_MAX
        and type(t.user_data_64) is int
        and 0 <= t.user_data_64 <= USER_DATA_64_MAX
        and type(t.user_data_32) is int
        and 0 <= t.user_data_32 <= USER_DATA_32_MAX
        and type(t.effective_at) is int
        and 0 <= t.effective_at <= EFFECTIVE_AT_MAX
    )


def check_transfer_fields(t: Transfer) -> CreateTransferResult:
    """Checks of a transfer's own fields, in precedence order; OK if it may go further."""
    if plain_fields_ok(t):
        return TR.OK
    return check_fields_in_order(t)


def check_fields_in_order(t: Transfer) -> CreateTransferResult:
    """Every check of `check_transfer_fields`, one by one, in precedence order."""
    if t.timestamp != 0:
        return TR.TIMESTAMP_MUST_BE_ZERO
    if not _is_int(t.id):
        return TR.ID_MUST_BE_INTEGER
    if t.id == 0:
        return TR.ID_MUST_NOT_BE_ZERO
    if t.id == ID_MAX:
        return TR.ID_MUST_NOT_BE_INT_MAX
    if not 0 < t.id < ID_MAX:
        return TR.ID_OUT_OF_RANGE
    if not _is_int(t.flags):
        return TR.FLAGS_ARE_RESERVED
    flags = int(t.flags)
    if flags & ~_CLIENT_FLAGS or flags < 0:
        return TR.FLAGS_ARE_RESERVED
    if (flags & _TWO_PHASE).bit_count() > 1:
        return TR.FLAGS_ARE_MUTUALLY_EXCLUSIVE
    if not _id_ok(t.debit_account_id):
        return TR.DEBIT_ACCOUNT_ID_INVALID
    if not _id_ok(t.credit_account_id):
        return TR.CREDIT_ACCOUNT_ID_INVALID
    if not _id_ok(t.pending_id):
        return TR.PENDING_ID_INVALID
    if not _id_ok(t.reverses_id):
        return TR.REVERSES_ID_INVALID
    if not _is_int(t.amount):
        return TR.AMOUNT_MUST_BE_INTEGER
    if t.amount < 0:
        return TR.AMOUNT_MUST_NOT_BE_NEGATIVE
    if t.amount > AMOUNT_MAX:
        return TR.AMOUNT_OUT_OF_RANGE
    if not _in_range(t.ledger, LEDGER_ID_MAX):
        return TR.LEDGER_INVALID
    if not _in_range(t.code, CODE_MAX):
        return TR.CODE_INVALID
    if not (
        _id_ok(t.user_data_128)
        and _in_range(t.user_data_64, USER_DATA_64_MAX)
        and _in_range(t.user_data_32, USER_DATA_32_MAX)
    ):
        return TR.USER_DATA_OUT_OF_RANGE
    if not _in_range(t.timeout_s, TIMEOUT_S_MAX):
        return TR.TIMEOUT_INVALID
    if not _in_range(t.effective_at, EFFECTIVE_AT_MAX):
        return TR.EFFECTIVE_AT_INVALID
    if flags & _RESOLVING:
        if t.pending_id == 0:
            return TR.PENDING_ID_MUST_NOT_BE_ZERO
        if t.pending_id == t.id:
            return TR.PENDING_ID_MUST_BE_DIFFERENT
        if t.timeout_s != 0:
            return TR.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        if t.reverses_id != 0:
            return TR.REVERSAL_MUST_NOT_BE_TWO_PHASE
        return TR.OK
    if t.debit_account_id == 0:
        return TR.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
    if t.credit_account_id == 0:
        return TR.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
    if t.debit_account_id == t.credit_account_id:
        return TR.ACCOUNTS_MUST_BE_DIFFERENT
    if t.pending_id != 0:
        return TR.PENDING_ID_MUST_BE_ZERO
    if t.timeout_s != 0 and not flags & _PENDING:
        return TR.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
    if t.reverses_id != 0 and flags & _PENDING:
        return TR.REVERSAL_MUST_NOT_BE_TWO_PHASE
    if t.reverses_id == t.id:
        return TR.REVERSES_ID_MUST_BE_DIFFERENT
    if t.ledger == 0:
        return TR.LEDGER_MUST_NOT_BE_ZERO
    if t.code == 0:
        return TR.CODE_MUST_NOT_BE_ZERO
    if t.amount == 0:
        return TR.AMOUNT_MUST_NOT_BE_ZERO
    return TR.OK


def compare_with_existing(t: Transfer, e: Transfer) -> CreateTransferResult:
    """Idempotency: the submitted transfer `t` against the stored one `e` with the same id.

    For a post or void, zero debit/credit/ledger/code/amount in `t` were filled from the
    pending transfer when it was stored, so a zero matches what is stored.
    """
    resolving = bool(int(t.flags) & _RESOLVING)

    def differs(submitted: int, stored: int) -> bool:
        return submitted != stored and not (resolving and submitted == 0)

    if int(t.flags) != int(e.flags):  # LINKED included: it is stored like the other flags
        return TR.EXISTS_WITH_DIFFERENT_FLAGS
    if t.pending_id != e.pending_id:
        return TR.EXISTS_WITH_DIFFERENT_PENDING_ID
    if t.timeout_s != e.timeout_s:
        return TR.EXISTS_WITH_DIFFERENT_TIMEOUT
    if differs(t.debit_account_id, e.debit_account_id):
        return TR.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
    if differs(t.credit_account_id, e.credit_account_id):
        return TR.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
    if differs(t.amount, e.amount):
        return TR.EXISTS_WITH_DIFFERENT_AMOUNT
    if t.reverses_id != e.reverses_id:
        return TR.EXISTS_WITH_DIFFERENT_REVERSES_ID
    if t.user_data_128 != e.user_data_128:
        return TR.EXISTS_WITH_DIFFERENT_USER_DATA_128
    if t.user_data_64 != e.user_data_64:
        return TR.EXISTS_WITH_DIFFERENT_USER_DATA_64
    if t.user_data_32 != e.user_data_32:
        return TR.EXISTS_WITH_DIFFERENT_USER_DATA_32
    if t.effective_at != e.effective_at:
        return TR.EXISTS_WITH_DIFFERENT_EFFECTIVE_AT
    if differs(t.ledger, e.ledger):
        return TR.EXISTS_WITH_DIFFERENT_LEDGER
    if differs(t.code, e.code):
        return TR.EXISTS_WITH_DIFFERENT_CODE
    return TR.EXISTS


def _same_submission(a: Transfer, b: Transfer) -> bool:
    """Every field equal, the flags (LINKED included) too."""
    return a == b


# -- transfers: the batch ----------------------------------------------------------------------


def expire_pending(batch: TransferBatch, pending_ids: Sequence[int]) -> list[int]:
    """Release every named pending transfer that is still open and past its deadline.

    Runs at the batch's first timestamp, before the batch's transfers. Returns the ids expired.
    """
    expired = []
    for pending_id in sorted(set(pending_ids)):
        pending = batch.transfers.get(pending_id)
        if pending is None or pending_id in batch.resolutions:
            continue
        deadline = pending_expires_at(pending)
        if not deadline or deadline > batch.timestamp_first:
            continue
        row = Transfer(
            id=expiry_id(pending_id),
            debit_account_id=pending.debit_account_id,
            credit_account_id=pending.credit_account_id,
            amount=pending.amount,
            ledger=pending.ledger,
            code=pending.code,
            flags=TransferFlags.EXPIRED,
            pending_id=pending_id,
        )
        _release_pending(batch, row, pending, posted_amount=0)
        expired.append(pending_id)
    return expired


def _release_pending(
    batch: TransferBatch, row: Transfer, pending: Transfer, *, posted_amount: int
) -> None:
    """Apply a post (posted_amount > 0), void or expiry of `pending` and record the row."""
    dr = batch.accounts[pending.debit_account_id]
    cr = batch.accounts[pending.credit_account_id]
    batch._remember_balance(pending.debit_account_id)
    batch._remember_balance(pending.credit_account_id)
    dr.debits_pending -= pending.amount
    cr.credits_pending -= pending.amount
    dr.debits_posted += posted_amount
    cr.credits_posted += posted_amount
    invariant(dr.debits_pending >= 0 and cr.credits_pending >= 0, "pending balance below zero")
    flags = int(row.flags)
    batch._set(batch.transfers, row.id, row)
    batch._set(batch.resolutions, pending.id, flags)
    if pending.timeout_s:
        batch._append(batch.deadlines_removed, pending.id)
    batch._append(batch.rows, _row(row, flags, batch.take_timestamp(), dr, cr))


def _post_or_void(batch: TransferBatch, t: Transfer) -> CreateTransferResult:
    pending = batch.transfers.get(t.pending_id)
    if pending is None:
        return TR.PENDING_TRANSFER_NOT_FOUND
    if not int(pending.flags) & _PENDING:
        return TR.PENDING_TRANSFER_NOT_PENDING
    if t.debit_account_id and t.debit_account_id != pending.debit_account_id:
        return TR.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
    if t.credit_account_id and t.credit_account_id != pending.credit_account_id:
        return TR.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
    if t.ledger and t.ledger != pending.ledger:
        return TR.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER
    if t.code and t.code != pending.code:
        return TR.PENDING_TRANSFER_HAS_DIFFERENT_CODE
    if t.amount > pending.amount:
        return TR.EXCEEDS_PENDING_TRANSFER_AMOUNT
    is_post = bool(int(t.flags) & _POST)
    if not is_post and t.amount not in (0, pending.amount):
        return TR.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
    resolved = batch.resolutions.get(pending.id)
    if resolved is not None:
        return resolution_result(resolved)
    invariant(
        pending.debit_account_id in batch.accounts and pending.credit_account_id in batch.accounts,
        "accounts of a pending transfer were not locked",
    )
    amount = (t.amount or pending.amount) if is_post else pending.amount
    if is_post:
        dr = batch.accounts[pending.debit_account_id]
        cr = batch.accounts[pending.credit_account_id]
        if dr.debits_posted + amount > AMOUNT_MAX:
            return TR.OVERFLOWS_DEBITS_POSTED
        if cr.credits_posted + amount > AMOUNT_MAX:
            return TR.OVERFLOWS_CREDITS_POSTED
    row = replace(
        t,
        debit_account_id=pending.debit_account_id,
        credit_account_id=pending.credit_account_id,
        amount=amount,
        ledger=pending.ledger,
        code=t.code or pending.code,
        flags=TransferFlags(int(t.flags)),
    )
    _release_pending(batch, row, pending, posted_amount=amount if is_post else 0)
    return TR.OK


def _plain_or_pending(batch: TransferBatch, t: Transfer) -> CreateTransferResult:
    dr = batch.accounts.get(t.debit_account_id)
    if dr is None:
        return TR.DEBIT_ACCOUNT_NOT_FOUND
    cr = batch.accounts.get(t.credit_account_id)
    if cr is None:
        return TR.CREDIT_ACCOUNT_NOT_FOUND
    if dr.ledger != cr.ledger:
        return TR.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER
    if t.ledger != dr.ledger:
        return TR.LEDGER_MUST_MATCH
    if t.reverses_id:
        original = batch.transfers.get(t.reverses_id)
        if original is None:
            return TR.REVERSED_TRANSFER_NOT_FOUND
        if int(original.flags) & (_PENDING | _VOID | _EXPIRED):
            return TR.REVERSED_TRANSFER_NOT_POSTED
        if (
            t.debit_account_id != original.credit_account_id
            or t.credit_account_id != original.debit_account_id
        ):
            return TR.REVERSAL_MUST_SWAP_ACCOUNTS
        if t.ledger != original.ledger:
            return TR.REVERSAL_LEDGER_MUST_MATCH
        if t.amount > original.amount - batch.reversed_totals.get(original.id, 0):
            return TR.EXCEEDS_REVERSIBLE_AMOUNT
    amount = t.amount
    flags = int(t.flags)
    pending = bool(flags & _PENDING)
    if pending:
        if dr.debits_pending + amount > AMOUNT_MAX:
            return TR.OVERFLOWS_DEBITS_PENDING
        if cr.credits_pending + amount > AMOUNT_MAX:
            return TR.OVERFLOWS_CREDITS_PENDING
    else:
        if dr.debits_posted + amount > AMOUNT_MAX:
            return TR.OVERFLOWS_DEBITS_POSTED
        if cr.credits_posted + amount > AMOUNT_MAX:
            return TR.OVERFLOWS_CREDITS_POSTED
    if dr.debits_pending + dr.debits_posted + amount > AMOUNT_MAX:
        return TR.OVERFLOWS_DEBITS
    if cr.credits_pending + cr.credits_posted + amount > AMOUNT_MAX:
        return TR.OVERFLOWS_CREDITS
    if (
        dr.flags & _DEBITS_MUST_NOT_EXCEED_CREDITS
        and dr.debits_pending + dr.debits_posted + amount > dr.credits_posted
    ):
        return TR.EXCEEDS_CREDITS
    if (
        cr.flags & _CREDITS_MUST_NOT_EXCEED_DEBITS
        and cr.credits_pending + cr.credits_posted + amount > cr.debits_posted
    ):
        return TR.EXCEEDS_DEBITS

    batch._remember_balance(t.debit_account_id)
    batch._remember_balance(t.credit_account_id)
    if pending:
        dr.debits_pending += amount
        cr.credits_pending += amount
    else:
        dr.debits_posted += amount
        cr.credits_posted += amount
    timestamp = batch.take_timestamp()
    # In-batch look-ups (a repeated id, a reversal or post of this one) read the submitted
    # transfer: they compare fields and flags, never the timestamp, which is in the row.
    batch._set(batch.transfers, t.id, t)
    if t.reverses_id:
        batch._set(
            batch.reversed_totals,
            t.reverses_id,
            batch.reversed_totals.get(t.reverses_id, 0) + amount,
        )
    if pending and t.timeout_s:
        batch._append(batch.deadlines_added, (t.id, timestamp + t.timeout_s * NS_PER_S))
    batch._append(batch.rows, _row(t, flags, timestamp, dr, cr))
    return TR.OK


def _create_one(batch: TransferBatch, t: Transfer) -> CreateTransferResult:
    result = check_transfer_fields(t)
    if result is not TR.OK:
        return result
    existing = batch.transfers.get(t.id)
    if existing is not None:
        return compare_with_existing(t, existing)
    failed = batch.failures.get(t.id)
    if failed is not None:
        original, code = failed
        return code if _same_submission(original, t) else TR.ID_ALREADY_FAILED
    if int(t.flags) & _RESOLVING:
        return _post_or_void(batch, t)
    return _plain_or_pending(batch, t)


def _remember_failure(batch: TransferBatch, t: Transfer, result: CreateTransferResult) -> None:
    if result in TRANSFER_RESULTS_REMEMBERED and t.id not in batch.failures:
        stored = replace(t, flags=TransferFlags(int(t.flags)))
        batch.failures[t.id] = (stored, result)
        batch.new_failures.append((stored, result))


def create_transfers(
    batch: TransferBatch, requests: Sequence[Sequence[Transfer]]
) -> list[list[CreateTransferResult]]:
    """Apply each request's transfers in order; linked chains never cross a request's end.

    Each request gets its own list of results, one per transfer, as if the requests had run
    one after another (this is how concurrent single calls share one database transaction).

    The common case goes through `_apply_plain` first: a plain transfer (or a chain of them)
    that is new and passes every check is applied inline, without the undo journal. Anything
    else (a failure, a replay, two-phase, a reversal) is undone and decided by `_create_one` or
    `_create_chain`, from the same state, so the results are the same either way.
    """
    out: list[list[CreateTransferResult]] = []
    for _ in create_transfers_in_steps(batch, requests, out, 0):
        pass
    return out


def create_transfers_in_steps(
    batch: TransferBatch,
    requests: Sequence[Sequence[Transfer]],
    out: list[list[CreateTransferResult]],
    step: int,
) -> Iterator[None]:
    """`create_transfers` as a generator: appends each request's results to `out` and, when
    `step` > 0, pauses after about every `step` transfers, between two chains, so the rows
    added so far (`batch.rows`) are final and may be written while the rest is decided."""
    done = 0
    for transfers in requests:
        results: list[CreateTransferResult] = []
        out.append(results)
        i = 0
        n = len(transfers)
        while i < n:
            if step and i + done >= step:
                yield
                done -= step
            # A chain: consecutive LINKED items, closed by the first item without LINKED.
            j = i
            while j < n:
                flags = transfers[j].flags
                if type(flags) in _FLAG_TYPES:
                    # Plain int operations: `&` on the enum is a Python-level call.
                    if flags == 0 or (flags != _LINKED and not int(flags) & _LINKED):
                        break
                elif not _linked(transfers[j]):
                    break
                j += 1
            if j == n:  # the last item is linked: the chain is open
                results.extend([TR.LINKED_EVENT_FAILED] * (n - 1 - i))
                results.append(TR.LINKED_EVENT_CHAIN_OPEN)
                break
            if _apply_plain(batch, transfers, i, j + 1):
                results.extend([TR.OK] * (j + 1 - i))
            elif j == i:
                result = _create_one(batch, transfers[i])
                _remember_failure(batch, transfers[i], result)
                results.append(result)
            else:
                results.extend(_create_chain(batch, transfers[i : j + 1]))
            i = j + 1
        done += n


def _apply_plain(batch: TransferBatch, transfers: Sequence[Transfer], start: int, end: int) -> bool:
    """Apply transfers[start:end] (one transfer, or one linked chain) if every member is a new
    plain transfer (flags 0 or LINKED) that `_create_one` would accept; True if applied.
    Otherwise nothing is left applied and False is returned: the caller decides the slow way.

    The same checks as `_create_one` -> `_plain_or_pending` for such a transfer (`plain_fields_ok`
    implies the field checks, no pending, post, void or reversal), their success branch only."""
    accounts = batch.accounts
    known = batch.transfers
    failures = batch.failures
    rows = batch.rows
    touched = batch.touched
    ts = batch._next_timestamp
    ts_end = batch.timestamp_first + batch.timestamp_count
    # A chain's undo: balances as they were before it, the rows and ids it added.
    saved: list[tuple[Balances, int, int]] | None = [] if end - start > 1 else None
    mark = len(rows)
    k = start
    while k < end:
        t = transfers[k]
        tid = t.id
        if (
            not plain_fields_ok(t)
            or tid in known
            or tid in failures
            or ts >= ts_end
            or (dr := accounts.get(t.debit_account_id)) is None
            or (cr := accounts.get(t.credit_account_id)) is None
        ):
            break
        amount = t.amount
        ledger = dr.ledger
        dr_debits = dr.debits_pending + dr.debits_posted + amount
        cr_credits = cr.credits_pending + cr.credits_posted + amount
        if (
            cr.ledger != ledger
            or t.ledger != ledger
            or dr.debits_posted + amount > AMOUNT_MAX
            or cr.credits_posted + amount > AMOUNT_MAX
            or dr_debits > AMOUNT_MAX
            or cr_credits > AMOUNT_MAX
            or (dr.flags & _DEBITS_MUST_NOT_EXCEED_CREDITS and dr_debits > dr.credits_posted)
            or (cr.flags & _CREDITS_MUST_NOT_EXCEED_DEBITS and cr_credits > cr.debits_posted)
        ):
            break
        if saved is not None:
            saved.append((dr, dr.debits_posted, tid))
            saved.append((cr, cr.credits_posted, 0))
        dr.debits_posted += amount
        cr.credits_posted += amount
        touched.add(t.debit_account_id)
        touched.add(t.credit_account_id)
        # In-batch look-ups (a repeated id, a reversal or post of this one) read the submitted
        # transfer: they compare fields and flags, never the timestamp, which is in the row.
        known[tid] = t
        rows.append(
            (
                tid,
                t.debit_account_id,
                t.credit_account_id,
                amount,
                0,
                0,
                ledger,
                t.code,
                _LINKED if t.flags else 0,  # plain_fields_ok: 0 or LINKED
                0,
                t.user_data_128,
                t.user_data_64,
                t.user_data_32,
                t.effective_at,
                ts,
                dr.debits_pending,
                dr.debits_posted,
                dr.credits_pending,
                dr.credits_posted,
                cr.debits_pending,
                cr.debits_posted,
                cr.credits_pending,
                cr.credits_posted,
            )
        )
        ts += 1
        k += 1
    if k == end:
        batch._next_timestamp = ts
        return True
    if saved:  # undo the chain's members applied so far, last first
        for pair in range(len(saved) - 2, -1, -2):
            dr, debits_posted, tid = saved[pair]
            cr, credits_posted, _ = saved[pair + 1]
            cr.credits_posted = credits_posted
            dr.debits_posted = debits_posted
            del known[tid]
        del rows[mark:]
    return False


def _linked(t: object) -> bool:
    flags = getattr(t, "flags", 0)
    return _is_int(flags) and bool(int(flags) & _LINKED)


def _create_chain(batch: TransferBatch, chain: Sequence[Transfer]) -> list[CreateTransferResult]:
    """All or nothing, as TigerBeetle: the first member that is not `ok` fails the chain with its
    own code (`exists` included), every other member gets `linked_event_failed`, nothing is
    applied. One refinement: a chain retried whole, every member `exists`, answers `exists` for
    each (an idempotent retry)."""
    batch._undo = []
    results: list[CreateTransferResult] = []
    try:
        for t in chain:
            result = _create_one(batch, t)
            results.append(result)
            # Go on while every member so far is `ok`, or every member so far is `exists`.
            if result is results[0] and result.ok:
                continue
            for undo in reversed(batch._undo):
                undo()
            batch._undo = None
            failed = 0 if results[0] is not TR.OK else len(results) - 1
            _remember_failure(batch, chain[failed], results[failed])
            out = [TR.LINKED_EVENT_FAILED] * len(chain)
            out[failed] = results[failed]
            return out
    finally:
        batch._undo = None
    return results


# -- accounts ----------------------------------------------------------------------------------


def check_account_fields(a: Account) -> CreateAccountResult:
    if not _is_int(a.id):
        return AR.ID_MUST_BE_INTEGER
    if a.id == 0:
        return AR.ID_MUST_NOT_BE_ZERO
    if a.id == ID_MAX:
        return AR.ID_MUST_NOT_BE_INT_MAX
    if not 0 < a.id < ID_MAX:
        return AR.ID_OUT_OF_RANGE
    # As plain ints: `~` of an IntFlag keeps only the declared bits, so `flags & ~KNOWN` on
    # enums is always 0 and an unknown bit would pass (and be dropped on the way to storage).
    if not _is_int(a.flags) or a.flags < 0 or int(a.flags) & ~_ACCOUNT_CLIENT_FLAGS:
        return AR.FLAGS_ARE_RESERVED
    flags = int(a.flags)
    if flags & _DEBITS_MUST_NOT_EXCEED_CREDITS and flags & _CREDITS_MUST_NOT_EXCEED_DEBITS:
        return AR.FLAGS_ARE_MUTUALLY_EXCLUSIVE
    if not (
        _id_ok(a.user_data_128)
        and _in_range(a.user_data_64, USER_DATA_64_MAX)
        and _in_range(a.user_data_32, USER_DATA_32_MAX)
    ):
        return AR.USER_DATA_OUT_OF_RANGE
    if a.ledger == 0:
        return AR.LEDGER_MUST_NOT_BE_ZERO
    if not _in_range(a.ledger, LEDGER_ID_MAX):
        return AR.LEDGER_OUT_OF_RANGE
    if a.code == 0:
        return AR.CODE_MUST_NOT_BE_ZERO
    if not _in_range(a.code, CODE_MAX):
        return AR.CODE_OUT_OF_RANGE
    if not isinstance(a.name, str) or not a.name.strip():
        return AR.NAME_MUST_NOT_BE_EMPTY
    if len(a.name) > ACCOUNT_NAME_MAX:
        return AR.NAME_TOO_LONG
    return AR.OK


def compare_account(a: Account, e: Account) -> CreateAccountResult:
    if int(a.flags) != int(e.flags):  # LINKED included: it is stored like the other flags
        return AR.EXISTS_WITH_DIFFERENT_FLAGS
    if a.user_data_128 != e.user_data_128:
        return AR.EXISTS_WITH_DIFFERENT_USER_DATA_128
    if a.user_data_64 != e.user_data_64:
        return AR.EXISTS_WITH_DIFFERENT_USER_DATA_64
    if a.user_data_32 != e.user_data_32:
        return AR.EXISTS_WITH_DIFFERENT_USER_DATA_32
    if a.ledger != e.ledger:
        return AR.EXISTS_WITH_DIFFERENT_LEDGER
    if a.code != e.code:
        return AR.EXISTS_WITH_DIFFERENT_CODE
    if a.name != e.name:
        return AR.EXISTS_WITH_DIFFERENT_NAME
    return AR.EXISTS


def create_accounts(
    accounts: Sequence[Account],
    existing_by_id: dict[int, Account],
    id_by_name: dict[str, int],
    ledgers: set[int],
) -> tuple[list[CreateAccountResult], list[Account]]:
    """Validate a batch of accounts against those stored; returns results and the new accounts.

    Linked chains of accounts follow the same rule as chains of transfers (`_create_chain`).
    """
    results: list[CreateAccountResult] = []
    created: list[Account] = []
    by_id = dict(existing_by_id)
    names = dict(id_by_name)

    def one(a: Account) -> CreateAccountResult:
        result = check_account_fields(a)
        if result is not AR.OK:
            return result
        existing = by_id.get(a.id)
        if existing is not None:
            return compare_account(a, existing)
        if a.ledger not in ledgers:
            return AR.LEDGER_NOT_FOUND
        if names.get(a.name, a.id) != a.id:
            return AR.NAME_ALREADY_USED
        stored = replace(a, flags=AccountFlags(int(a.flags)))
        by_id[a.id] = stored
        names[a.name] = a.id
        created.append(stored)
        return AR.OK

    i, n = 0, len(accounts)
    while i < n:
        j = i
        while j < n and _linked(accounts[j]):
            j += 1
        if j == i:
            results.append(one(accounts[i]))
            i += 1
            continue
        if j == n:
            results.extend([AR.LINKED_EVENT_FAILED] * (n - 1 - i))
            results.append(AR.LINKED_EVENT_CHAIN_OPEN)
            break
        mark = len(created)
        chain_results: list[CreateAccountResult] = []
        for a in accounts[i : j + 1]:
            result = one(a)
            chain_results.append(result)
            if result is chain_results[0] and result in (AR.OK, AR.EXISTS):
                continue
            for undone in created[mark:]:
                by_id.pop(undone.id, None)
                names.pop(undone.name, None)
            del created[mark:]
            failed = 0 if chain_results[0] is not AR.OK else len(chain_results) - 1
            code = chain_results[failed]
            chain_results = [AR.LINKED_EVENT_FAILED] * (j + 1 - i)
            chain_results[failed] = code
            break
        results.extend(chain_results)
        i = j + 1
    return results, created
