"""A biller's counter terminal: a bill paid by card is one purse purchase of the bill's amount,
journaled with the bill it pays (fare_rule "bill:<ref>") and uploaded like every tap. The back
office's bill flow links the payment to this record by (terminal, sequence); clearing moves the
money card → the biller once, by the card's TAC.

A bill already paid by this card at this counter is answered from the journal, never charged
twice (a re-presentation after a torn debit completes it).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from cardio.apdu import Transport
from cardio.crypto import TxnType
from cardio.errors import (
    ApplicationLocked,
    CardioError,
    CardStatusError,
    InsufficientFunds,
    TransportError,
)
from cardio.money import yuan
from cardio.purse import Purse
from terminals.errors import InvariantError
from terminals.journal import SHORT_TEXT_MAX, RecordKind, RecordStatus, TapRecord
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
        try:
            init = purse.initialize_purchase(
                self.purchase_key_index, amount_fen, self.terminal_id, capp=False
            )
        except InsufficientFunds:
            init = None
        if init is None or init.balance_fen < amount_fen:
            return TapResult(
                TapOutcome.INSUFFICIENT_BALANCE,
                f"balance too low for {yuan(amount_fen)}: please top up",
                card_no,
            )
        if info.card_type is None:  # _read_card answers UNKNOWN_CARD before this
            raise InvariantError("a card of unknown type got past _read_card")
        versions = self.lists.versions()
        draft = TapRecord(
            kind=RecordKind.PURCHASE,
            status=RecordStatus.GREY,
            terminal_seq=0,
            card_no=card_no,
            card_counter=init.offline_counter,
            txn_type=int(TxnType.EP_PURCHASE),
            amount_fen=amount_fen,
            balance_before_fen=init.balance_fen,
            balance_after_fen=init.balance_fen - amount_fen,
            occurred_at=now,
            tac=None,
            card_type=info.card_type.label,
            full_fare_fen=amount_fen,  # a bill has no concession: nothing to claim
            fare_rule=rule,
            deny_list_version=versions.deny,
            action_list_version=versions.action,
        )
        record, failed = self._debit(
            purse,
            draft,
            init.offline_counter,
            init.card_random,
            init.key_version,
            init.algorithm,
            now,
            None,
        )
        if failed is not None:
            return replace(failed, recovered=tuple(recovered))
        return TapResult(
            TapOutcome.OK,
            f"OK paid {yuan(amount_fen)} for {rule}",
            card_no,
            record,
            recovered=tuple(recovered),
        )
