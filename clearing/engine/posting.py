"""Posting one chunk: each posting decision's ledger transfers, the accounts they need, and the
ledger's answer (a record any of whose transfers the ledger refused goes to quarantine)."""

from __future__ import annotations

import functools

from clearing import books
from clearing.books import LEDGER_CNY, TransferCode
from clearing.engine.decide import Decision, Outcome
from clearing.engine.facts import Pending
from clearing.engine.reasons import QuarantineReason
from clearing.engine.uow import Release, UnitOfWork, account_id, card_account
from clearing.records import TapKind
from ledger import CreateTransferResult, Transfer, TransferFlags, transfer_id
from ledger.errors import invariant
from ledger.types import BATCH_MAX

# The codes as plain ints: the ledger's rules accept a plain transfer whose fields are exact ints
# in one expression (rules.plain_fields_ok); an IntEnum code sent every transfer down the slow
# path of checks one by one (measured: ~10 % of clearing's CPU on 100,000 taps).
_LOAD_CONFIRMED = int(TransferCode.LOAD_CONFIRMED)
_CLINIC_COPAY = int(TransferCode.CLINIC_COPAY)
_TAP_PURCHASE = int(TransferCode.TAP_PURCHASE)
_SUBSIDY_CLAIM = int(TransferCode.SUBSIDY_CLAIM)
_INSURER_CLAIM = int(TransferCode.INSURER_CLAIM)
_LEDGER_CNY = int(LEDGER_CNY)
_NOT_LINKED = TransferFlags.NONE
_LINKED = TransferFlags.LINKED


@functools.lru_cache(maxsize=1 << 19)
def _card_id(card_no: str) -> int:
    """The ledger id of a card's account (asked for every record)."""
    return account_id(card_account(card_no))


@functools.lru_cache(maxsize=1 << 12)
def _payable_id(participant_code: str) -> int:
    """The ledger id of what is owed to a participant (the account name is checked once)."""
    return account_id(books.payable(participant_code))


def _transfer(
    id_key: str,
    debit: int,
    credit: int,
    amount: int,
    code: int,
    p: Pending,
    flags: TransferFlags = _NOT_LINKED,
) -> Transfer:
    # Positional, in Transfer's field order (keywords cost a third more, per record).
    tap = p.tap
    return Transfer(
        transfer_id(id_key),  # id
        debit,  # debit_account_id
        credit,  # credit_account_id
        amount,  # amount
        _LEDGER_CNY,  # ledger
        code,  # code
        flags,  # flags
        0,  # pending_id
        0,  # timeout_s
        0,  # reverses_id
        0,  # user_data_128
        tap.terminal_seq,  # user_data_64
        tap.card_counter,  # user_data_32
    )


def transfers_for(p: Pending, suffix: str) -> list[Transfer]:
    """The record's transfers: a load's one, or the card's debit with its claims, linked."""
    tap, decision = p.tap, p.decision
    if tap.kind is TapKind.LOAD:
        credit = _card_id(tap.card_no)
        pending = account_id(books.card_pending(tap.card_no))
        key = f"load:{tap.load_id}{suffix}"
        return [_transfer(key, pending, credit, tap.amount_fen, _LOAD_CONFIRMED, p)]
    code_main = _CLINIC_COPAY if tap.kind is TapKind.CLINIC else _TAP_PURCHASE
    key = f"{tap.card_no}:{tap.purse}:{tap.card_counter}{suffix}"
    payable = _payable_id(decision.participant_code or "")
    # (key, debit account, amount, code) of each transfer, in order.
    parts: list[tuple[str, int, int, int]] = []
    if tap.amount_fen > 0:
        parts.append((f"tap:{key}", _card_id(tap.card_no), tap.amount_fen, code_main))
    if decision.subsidy_fen and decision.subsidy_scheme:
        fund = account_id(books.subsidy(decision.subsidy_scheme))
        parts.append((f"subsidy:{key}", fund, decision.subsidy_fen, _SUBSIDY_CLAIM))
    if decision.insured_fen and decision.insurer_scheme:
        insurer = account_id(books.insurer(decision.insurer_scheme))
        parts.append((f"insurer:{key}", insurer, decision.insured_fen, _INSURER_CLAIM))
    # The card debit and its claim succeed or fail together: every one but the last LINKED.
    last = len(parts) - 1
    return [
        _transfer(k, debit, payable, amount, code, p, _LINKED if i < last else _NOT_LINKED)
        for i, (k, debit, amount, code) in enumerate(parts)
    ]


def _accounts_of(p: Pending) -> list[str]:
    names = [card_account(p.tap.card_no)]
    if p.tap.kind is TapKind.LOAD:
        names.append(books.card_pending(p.tap.card_no))
    if p.decision.participant_code:
        names.append(books.payable(p.decision.participant_code))
    if p.decision.subsidy_scheme:
        names.append(books.subsidy(p.decision.subsidy_scheme))
    if p.decision.insurer_scheme:
        names.append(books.insurer(p.decision.insurer_scheme))
    return names


def prepare_transfers(pendings: list[Pending], releases: dict[int, Release]) -> list[Pending]:
    """Each posting decision's transfers (`p.transfers`); returns the posting records. Pure: the
    engine builds them before the ledger is locked."""
    posting = [p for p in pendings if p.decision.outcome.posts]
    for p in posting:
        suffix = ""
        release = releases.get(p.tap.id)
        if release is not None and release[2] == QuarantineReason.LEDGER_REFUSED:
            # The ledger remembers a refused id forever: a re-clear needs a new one.
            suffix = f":r{release[0]}"
        p.transfers = transfers_for(p, suffix)
    return posting


async def open_accounts(uow: UnitOfWork, posting: list[Pending], known: set[int]) -> None:
    """Open the accounts the records name that are not `known` yet (and add them to it)."""
    names: set[str] = set()
    for p in posting:
        # Every account a record names is known after the first chunks: its names are made only
        # when one of its accounts is not.
        code = p.decision.participant_code
        if (
            _card_id(p.tap.card_no) in known
            and (not code or _payable_id(code) in known)
            and all(
                t.debit_account_id in known and t.credit_account_id in known for t in p.transfers
            )
        ):
            continue
        names.update(_accounts_of(p))
    missing = [n for n in sorted(names) if account_id(n) not in known]
    if missing:
        opened = await uow.books.ensure_accounts(missing)
        known.update(opened.values())


async def submit(uow: UnitOfWork, posting: list[Pending]) -> None:
    """Post the records' transfers (their accounts open), in ledger batches that never split a
    record's linked transfers; a record the ledger refused goes to quarantine."""
    owners: list[Pending] = []
    transfers: list[Transfer] = []
    for p in posting:
        if len(transfers) + len(p.transfers) > BATCH_MAX:
            await _submit(uow, owners, transfers)
            owners, transfers = [], []
        for transfer in p.transfers:
            owners.append(p)
            transfers.append(transfer)
    await _submit(uow, owners, transfers)


async def _submit(uow: UnitOfWork, owners: list[Pending], transfers: list[Transfer]) -> None:
    """Post one ledger batch; `owners[i]` is the record `transfers[i]` belongs to. A record
    any of whose transfers the ledger refused goes to quarantine (its linked partner is
    refused with it, as `linked_event_failed`: the record keeps the first real cause)."""
    if not transfers:
        return
    results = await uow.books.create_transfers(transfers)
    invariant(len(results) == len(transfers), "one ledger result per transfer")
    for p, result in zip(owners, results, strict=True):
        if result in (CreateTransferResult.OK, CreateTransferResult.EXISTS):
            continue
        if p.ledger_result is None or p.ledger_result == "linked_event_failed":
            p.ledger_result = str(result)
    for p in owners:
        if p.ledger_result is not None and p.decision.outcome.posts:
            p.decision = Decision(Outcome.QUARANTINE, QuarantineReason.LEDGER_REFUSED)
