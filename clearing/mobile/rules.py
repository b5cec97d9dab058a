"""Pure rules of top-ups: identifiers and idempotency keys, the caps, and the ledger transfers.

No I/O. Every key derives from what the resident or Stripe named, so a repeat (a phone retrying,
Stripe re-delivering, a task re-running) lands on the same id and moves nothing twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from clearing.books import chart
from clearing.books.codes import LEDGER_CNY, TransferCode
from clearing.mobile.errors import AmountOverCap, BalanceCapExceeded
from ledger import Transfer, TransferFlags, account_id, transfer_id

TOPUP_ID_PREFIX = "tu_"
LOAD_ID_PREFIX = "stripe-"


def topup_id_for(resident_id: str, request_id: str) -> str:
    """The top-up's id: a digest of (resident, request id), the resident's idempotency key."""
    digest = hashlib.sha256(f"{resident_id}\x00{request_id}".encode()).hexdigest()
    return TOPUP_ID_PREFIX + digest[:32]


def stripe_idempotency_key(topup_id: str) -> str:
    """The Idempotency-Key of the PaymentIntent creation: a retried request creates no second."""
    return f"onecard-{topup_id}"


def load_id_for(payment_intent_id: str) -> str:
    return LOAD_ID_PREFIX + payment_intent_id


@dataclass(frozen=True, slots=True)
class Caps:
    topup_fen_max: int
    card_balance_fen_max: int


def check_caps(caps: Caps, amount_fen: int, on_card_fen: int, pending_fen: int) -> None:
    """Refuse a top-up over the per-load cap, or one that would lift what the card holds (on
    the card, pending delivery, and being paid) above the balance cap: JR/T 0025 purses hold
    at most what the issuer allows, and a load the card would refuse could never be delivered."""
    if amount_fen > caps.topup_fen_max:
        raise AmountOverCap(
            f"one top-up is at most {caps.topup_fen_max} fen; send a smaller amount_fen"
        )
    room = caps.card_balance_fen_max - on_card_fen - pending_fen
    if amount_fen > room:
        raise BalanceCapExceeded(
            f"the card holds {on_card_fen} fen and {pending_fen} fen are on their way; a card "
            f"holds at most {caps.card_balance_fen_max} fen, so top up at most {max(room, 0)} fen"
        )


def _transfer(key: str, debit: str, credit: str, amount_fen: int, code: TransferCode) -> Transfer:
    return Transfer(
        id=transfer_id(key),
        debit_account_id=account_id(debit),
        credit_account_id=account_id(credit),
        amount=amount_fen,
        ledger=LEDGER_CNY,
        code=int(code),
    )


def paid_transfers(
    payment_intent_id: str, card_no: str, amount_fen: int, fee_fen: int
) -> list[Transfer]:
    """Stripe took the money: card-pending credited from stripe:balance, and Stripe's fee (when
    its balance transaction names one) booked to expense:psp-fees. Linked: both or neither."""
    out = [
        _transfer(
            f"stripe-paid:{payment_intent_id}",
            chart.STRIPE_BALANCE,
            chart.card_pending(card_no),
            amount_fen,
            TransferCode.PENDING_LOAD,
        )
    ]
    if fee_fen > 0:
        out.append(
            _transfer(
                f"stripe-fee:{payment_intent_id}",
                chart.EXPENSE_PSP_FEES,
                chart.STRIPE_BALANCE,
                fee_fen,
                TransferCode.PSP_FEE,
            )
        )
        out[0] = replace(out[0], flags=out[0].flags | TransferFlags.LINKED)
    return out


def refund_transfers(payment_intent_id: str, card_no: str, amount_fen: int) -> list[Transfer]:
    """The undelivered load goes back to Stripe (refund or expiry: one key for both paths)."""
    return [
        _transfer(
            f"stripe-refund:{payment_intent_id}",
            chart.card_pending(card_no),
            chart.STRIPE_BALANCE,
            amount_fen,
            TransferCode.PENDING_LOAD_REFUND,
        )
    ]
