"""Posting one chunk: each posting decision's ledger transfers, the accounts they need, and the
ledger's answer (a record any of whose transfers the ledger refused goes to quarantine)."""

from __future__ import annotations

import dataclasses

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


def _transfer(id_key: str, debit: str, credit: int, amount: int, code: int, p: Pending) -> Transfer:
    return Transfer(
        id=transfer_id(id_key),
        debit_account_id=account_id(debit),
        credit_account_id=credit,
        amount=amount,
        ledger=LEDGER_CNY,
        code=code,
        user_data_64=p.tap.terminal_seq,
        user_data_32=p.tap.card_counter,
    )


def transfers_for(p: Pending, suffix: str) -> list[Transfer]:
    """The record's transfers: a load's one, or the card's debit with its claims, linked."""
    tap, decision = p.tap, p.decision
    if tap.kind is TapKind.LOAD:
        credit = account_id(card_account(tap.card_no))
        pending = books.card_pending(tap.card_no)
        key = f"load:{tap.load_id}{suffix}"
        return [_transfer(key, pending, credit, tap.amount_fen, TransferCode.LOAD_CONFIRMED, p)]
    code_main = (
        TransferCode.CLINIC_COPAY if tap.kind is TapKind.CLINIC else TransferCode.TAP_PURCHASE
    )
    key = f"{tap.card_no}:{tap.purse}:{tap.card_counter}{suffix}"
    payable = account_id(books.payable(decision.participant_code or ""))
    out: list[Transfer] = []
    if tap.amount_fen > 0:
        card = card_account(tap.card_no)
        out.append(_transfer(f"tap:{key}", card, payable, tap.amount_fen, code_main, p))
    if decision.subsidy_fen and decision.subsidy_scheme:
        fund = books.subsidy(decision.subsidy_scheme)
        code = TransferCode.SUBSIDY_CLAIM
        out.append(_transfer(f"subsidy:{key}", fund, payable, decision.subsidy_fen, code, p))
    if decision.insured_fen and decision.insurer_scheme:
        insurer = books.insurer(decision.insurer_scheme)
        code = TransferCode.INSURER_CLAIM
        out.append(_transfer(f"insurer:{key}", insurer, payable, decision.insured_fen, code, p))
    # The card debit and its claim succeed or fail together.
    return [
        dataclasses.replace(t, flags=t.flags | TransferFlags.LINKED) if i < len(out) - 1 else t
        for i, t in enumerate(out)
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


async def post(
    uow: UnitOfWork, pendings: list[Pending], releases: dict[int, Release], known: set[int]
) -> None:
    """Post every posting decision of the chunk, opening the accounts not `known` yet (and
    adding them to it), in ledger batches that never split a record's linked transfers."""
    posting = [p for p in pendings if p.decision.outcome.posts]
    names: set[str] = set()
    for p in posting:
        suffix = ""
        release = releases.get(p.tap.id)
        if release is not None and release[2] == QuarantineReason.LEDGER_REFUSED:
            # The ledger remembers a refused id forever: a re-clear needs a new one.
            suffix = f":r{release[0]}"
        p.transfers = transfers_for(p, suffix)
        names.update(_accounts_of(p))
    missing = [n for n in sorted(names) if account_id(n) not in known]
    if missing:
        opened = await uow.books.ensure_accounts(missing)
        known.update(opened.values())
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
