"""Pure rules of paying a bill: what may be paid, and how long to wait before asking a biller
again. No I/O; the errors are the bill workflow's typed failures (RFC 9457 via clearing.http).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

from clearing.errors import ClearingError, Conflict, InvalidRequest, NotFound, Unavailable

# A bill over this is paid at the biller's own office (anti-fraud and the card's load cap
# alike): 5,000 yuan. The setting `bill_amount_fen_max` may lower or raise it within bounds.
BILL_AMOUNT_FEN_MAX = 500_000
BILL_AMOUNT_FEN_CEILING = 10_000_000  # what the setting may never exceed (100,000 yuan)
# Confirmation retries: exponential from the base, capped, a bounded number of times per task
# run; a beat sweep re-queues what is still unacknowledged after that (never given up).
CONFIRM_BACKOFF_BASE_S = 2
CONFIRM_BACKOFF_CAP_S = 600
CONFIRM_RETRIES_MAX = 8


class BillStatus(enum.StrEnum):
    OPEN = "open"
    PAID = "paid"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Bill:
    """A bill as the biller reports it (amounts in fen)."""

    biller_code: str
    account_no: str
    bill_id: str
    amount_due_fen: int
    due_date: date
    period: str
    status: BillStatus
    holder_name: str


class UnknownBiller(NotFound):
    code = "unknown_biller"
    title = "No such biller"


class UnknownBillAccount(NotFound):
    code = "unknown_bill_account"
    title = "The biller has no such account"


class BillAlreadyPaid(Conflict):
    code = "bill_already_paid"
    title = "The bill is already paid"


class BillExpired(Conflict):
    code = "bill_expired"
    title = "The bill has expired"


class BillChanged(Conflict):
    code = "bill_changed"
    title = "The biller's bill is not the one being paid"


class AmountMismatch(InvalidRequest):
    code = "bill_amount_mismatch"
    title = "The amount is not the amount due"


class AmountOverCap(InvalidRequest):
    code = "bill_amount_over_cap"
    title = "The amount is over the bill payment cap"


class BillerUnavailable(Unavailable):
    code = "biller_unavailable"
    title = "The biller is not answering"


class BillerProtocolError(ClearingError):
    code = "biller_protocol_error"
    status = 502
    title = "The biller answered something unexpected"


def require_open(bill: Bill) -> None:
    """Refuse a bill that is paid or expired."""
    where = f"bill {bill.bill_id} of account {bill.account_no} at {bill.biller_code}"
    if bill.status is BillStatus.PAID:
        raise BillAlreadyPaid(f"{where} is already paid: nothing to pay, nothing was charged")
    if bill.status is BillStatus.EXPIRED:
        raise BillExpired(
            f"{where} expired (due {bill.due_date}): ask the biller for a new bill; "
            "nothing was charged"
        )


def require_payable(bill: Bill, bill_id: str, amount_fen: int, cap_fen: int) -> None:
    """Refuse, in this order: a bill that is paid or expired, another bill than the one the
    payer saw, an amount that is not the amount due, an amount over the cap."""
    require_open(bill)
    where = f"bill {bill.bill_id} of account {bill.account_no} at {bill.biller_code}"
    if bill.bill_id != bill_id:
        raise BillChanged(
            f"account {bill.account_no} now has bill {bill.bill_id}, not {bill_id}: look the "
            "bill up again and pay the new one; nothing was charged"
        )
    if amount_fen != bill.amount_due_fen:
        raise AmountMismatch(
            f"{where} is due {bill.amount_due_fen} fen, not {amount_fen}: pay exactly the "
            "amount due; nothing was charged"
        )
    if amount_fen > cap_fen:
        raise AmountOverCap(
            f"{amount_fen} fen is over the {cap_fen} fen cap for paying a bill here: pay it at "
            "the biller's office; nothing was charged"
        )


def backoff_s(
    attempt: int, base_s: int = CONFIRM_BACKOFF_BASE_S, cap_s: int = CONFIRM_BACKOFF_CAP_S
) -> int:
    """Seconds before retry number `attempt` (0 first): base·2^attempt, never above the cap."""
    if attempt < 0 or base_s <= 0 or cap_s < base_s:
        raise ValueError("attempt ≥ 0 and 0 < base ≤ cap")
    if attempt >= cap_s.bit_length():  # 2^attempt alone passes the cap: no huge integers
        return cap_s
    return min(cap_s, base_s << attempt)


def mask_card_no(card_no: str) -> str:
    """A card number as a receipt shows it: the last four digits only."""
    return f"card ****{card_no[-4:]}"
