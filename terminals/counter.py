"""A biller's counter terminal: a bill paid by card is one purse purchase of the bill's amount,
journaled with the bill it pays (fare_rule "bill:<ref>") and uploaded like every tap. The back
office's bill flow links the payment to this record by (terminal, sequence); clearing moves the
money card → the biller once, by the card's TAC.

A bill already paid by this card at this counter is answered from the journal, never charged
twice (a re-presentation after a torn debit completes it).
"""

from __future__ import annotations

from datetime import datetime

from cardio.apdu import Transport
from cardio.errors import (
    ApplicationLocked,
    CardioError,
    CardStatusError,
    TransportError,
)
from cardio.money import yuan
from cardio.purse import Purse
from terminals.journal import SHORT_TEXT_MAX, RecordKind, RecordStatus
from terminals.terminal import PurseTerminal, TapOutcome, TapResult

BILL_PREFIX = "bill:"


class BillCounter(PurseTerminal):
    """A counter terminal of a water, power or heating company."""

    def pay(self, transport: Transport, bill_ref: str, amount_fen: int) -> TapResult:
        """Debit `amount_fen` for bill `bill_ref` (the biller's bill id) from the card."""
        if amount_fen <= 0 or not 1 <= len(BILL_PREFIX + bill_ref) <= SHORT_TEXT_MAX:
            raise ValueError(
                f"a bill has a positive amount and an id of 1-{SHORT_TEXT_MAX - 5} characters"
            )
        purse = Purse(transport)
        now = self._now()
        try:
            return self._pay(purse, BILL_PREFIX + bill_ref, amount_fen, now)
        except TransportError:
            return TapResult(TapOutcome.CARD_REMOVED, "card removed: present it again")
        except ApplicationLocked:
            return TapResult(TapOutcome.LOCKED, "card is locked: see the service desk")
        except (CardStatusError, CardioError) as error:
            return TapResult(
                TapOutcome.CARD_ERROR, f"card error ({error.code}): see the service desk"
            )

    def _pay(self, purse: Purse, rule: str, amount_fen: int, now: datetime) -> TapResult:
        info, refused = self._read_card(purse, now)
        if refused is not None or info is None:
            return refused  # type: ignore[return-value]
        card_no = info.card_no
        recovered, _retap = self._recover_card(purse, card_no, now)
        paid = [
            r
            for r in self.journal.records_of_card(card_no)
            if r.fare_rule == rule and r.status is RecordStatus.COMPLETE
        ]
        if paid:
            return TapResult(
                TapOutcome.RECOVERED,
                f"{rule} is paid: {yuan(paid[-1].amount_fen)} by card",
                card_no,
                paid[-1],
                recovered=tuple(recovered),
            )
        return self._purchase(
            purse,
            info,
            RecordKind.PURCHASE,
            amount_fen,
            rule,
            now,
            recovered,
            f"OK paid {yuan(amount_fen)} for {rule}",
        )
