"""The references a settlement's bank instructions carry, so the bank's statement can be matched
back to them: the message id of a day's pain.001 and each payout's end-to-end id. Pure; imports
nothing of ours, so reconciliation can read them without the card layer.
"""

from __future__ import annotations

import re
from datetime import date

MAX35 = 35
_ID_PATTERN = re.compile(r"^[A-Za-z0-9/\-?:().,'+ ]{1,35}$")


class SettlementFileError(ValueError):
    code = "settlement_file_invalid"


def end_to_end_id(business_day: date, participant_code: str) -> str:
    """Stable per day and participant: the bank and the statement match on it."""
    value = f"OC{business_day:%Y%m%d}-{participant_code}"[:MAX35]
    if not _ID_PATTERN.match(value):
        raise SettlementFileError(f"participant code {participant_code!r} cannot form an id")
    return value


def message_id(business_day: date) -> str:
    return f"ONECARD-SETTLE-{business_day:%Y%m%d}"


def payment_information_id(business_day: date) -> str:
    """The PmtInfId of the day's one PmtInf (a batch booking may name it)."""
    return f"{message_id(business_day)}-1"[:MAX35]


def payout_transfer_key(business_day: date, participant_code: str) -> str:
    """The idempotency key of the ledger transfer paying a participant its net of a day
    (payable -> escrow): ledger.ids.transfer_id of it is the transfer's id."""
    return f"settle:{business_day}:{participant_code}:payout"
