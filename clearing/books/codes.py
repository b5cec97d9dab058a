"""Transfer codes: why money moved. The value is the ledger transfer `code` (a small int).

Pure. Codes are stable forever once used in a posted transfer: add, never renumber.
"""

from __future__ import annotations

import enum

# The ledger number of the card company's CNY books (amounts in fen).
LEDGER_CNY = 156  # ISO 4217 numeric code of CNY


class TransferCode(enum.IntEnum):
    # card lifecycle (registry)
    CARD_DEPOSIT = 101  # bank:cash|bank:escrow -> card-deposit:<no>
    CARD_FIRST_LOAD = 102  # bank:cash|bank:escrow -> card:<no>
    CARD_LOAD_COUNTER = 103  # cash load at a counter: bank:cash -> card:<no>
    CARD_BALANCE_MOVE = 104  # replace: card:<old> -> card:<new>
    CARD_REFUND = 105  # card:<no> -> bank:escrow (balance paid back)
    CARD_DEPOSIT_REFUND = 106  # card-deposit:<no> -> bank:escrow
    CASH_BANKED = 107  # bank:cash -> bank:escrow (counter takings banked)
    # online top-up (Stripe)
    PENDING_LOAD = 201  # stripe:balance -> card-pending:<no>
    LOAD_CONFIRMED = 202  # card-pending:<no> -> card:<no> (TAC of the load checked)
    PENDING_LOAD_REFUND = 203  # card-pending:<no> -> stripe:balance (expired)
    PSP_FEE = 204  # expense:psp-fees -> stripe:balance
    STRIPE_PAYOUT = 205  # stripe:balance -> bank:escrow
    # clearing
    TAP_PURCHASE = 301  # card:<no> -> payable:<operator>
    CLINIC_COPAY = 302  # card:<no> -> payable:<clinic> (the patient's share)
    INSURER_CLAIM = 303  # insurer:<scheme> -> payable:<clinic> (the insured share)
    SUBSIDY_CLAIM = 304  # subsidy:<scheme> -> payable:<operator> (full fare - charged)
    QUARANTINE_WRITE_OFF = 305  # reserved: a written-off record moves no card money
    # settlement
    COMMISSION = 401  # payable:<participant> -> revenue:commission
    SETTLEMENT_PAYOUT = 402  # payable:<participant> -> bank:escrow
    INSURER_RECEIPT = 403  # bank:escrow -> insurer:<scheme> (the fund pays its claims)
    SUBSIDY_RECEIPT = 404  # bank:escrow -> subsidy:<scheme>
    # bills
    BILL_PAYMENT = 501  # stripe:balance|bank:cash -> payable:<biller> (a bill paid)
    # corrections
    REVERSAL = 900  # the reverse of an earlier transfer, named in the transfer
    SUSPENSE_IN = 901  # <source> -> suspense:<reason>
    SUSPENSE_OUT = 902  # suspense:<reason> -> <destination>
