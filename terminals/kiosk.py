"""The load kiosk: writes pending online top-ups (the action list) onto the card.

INITIALIZE FOR LOAD -> journal intent -> serial -> grey record -> the load host checks the card's
MAC1 and answers MAC2 -> CREDIT FOR LOAD -> the card's TAC completes a `load` record, which the
clearing service uses to confirm the load. A load already delivered (in this journal) is never
delivered twice; a torn credit is settled at the next presentation (GET TRANSACTION PROOF).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cardio.apdu import Transport
from cardio.crypto import TxnType
from cardio.errors import (
    ApplicationLocked,
    CardioError,
    OutOfRange,
    PurseMacInvalid,
    TransportError,
)
from cardio.money import yuan
from cardio.purse import Purse
from cardio.records import mask_card_number
from terminals.errors import MacInvalid
from terminals.journal import Journal, RecordKind, RecordStatus, TapRecord
from terminals.lists import ListStore, PendingLoad
from terminals.sam import LoadHost, SerialStore
from terminals.terminal import TapOutcome, recover_grey

LOADS_PER_PRESENTATION_MAX = 8


@dataclass(frozen=True, slots=True)
class LoadResult:
    outcome: TapOutcome
    message: str
    card_no: str | None = None
    delivered: tuple[TapRecord, ...] = ()


class LoadKiosk:
    """Delivers the card's pending loads; uses the terminal checks of PurseTerminal for recovery."""

    def __init__(
        self,
        journal: Journal,
        load_host: LoadHost,
        serials: SerialStore,
        lists: ListStore,
        *,
        load_key_index: int = 1,
        clock: Callable[[], datetime] | None = None,
        on_record: Callable[[], None] | None = None,
    ) -> None:
        self.journal = journal
        self.host = load_host
        self.serials = serials
        self.lists = lists
        self.load_key_index = load_key_index
        self.clock = clock or (lambda: datetime.now(UTC))
        self.on_record = on_record
        self.terminal_id = load_host.terminal_id

    def startup(self) -> int:
        """Fill serials handed out but never journaled (power cut); returns how many."""
        return self.journal.reconcile(self.serials.last)

    def _delivered(self, load_id: str, card_no: str) -> bool:
        for record in self.journal.records_of_card(card_no):
            if (
                record.load_id == load_id
                and self.journal.outcome(record.terminal_seq) != "not_debited"
            ):
                return True
        return False

    def has_pending(self, card_no: str, now: datetime) -> bool:
        """Whether a load for this card waits on the action list and is not delivered yet."""
        return any(
            not self._delivered(load.load_id, card_no)
            for load in self.lists.pending_loads(card_no, now)
        )

    def deliver(self, transport: Transport) -> LoadResult:
        purse = Purse(transport)
        now = self.clock().replace(microsecond=0)
        try:
            return self._deliver(purse, now)
        except TransportError:
            return LoadResult(TapOutcome.CARD_REMOVED, "card removed: present it again")
        except ApplicationLocked:
            return LoadResult(TapOutcome.LOCKED, "card is locked: see the service desk")
        except CardioError as error:
            return LoadResult(
                TapOutcome.CARD_ERROR, f"card error ({error.code}): see the service desk"
            )

    def _deliver(self, purse: Purse, now: datetime) -> LoadResult:
        selected = purse.select()
        info = selected.public_info or purse.read_public_info()
        card_no = info.card_no
        masked = mask_card_number(card_no)
        if len(card_no) != 16 or not card_no.isdigit():
            return LoadResult(TapOutcome.UNKNOWN_CARD, f"card {masked} is not a city card")
        if self.lists.is_denied(card_no):
            return LoadResult(
                TapOutcome.DENIED, f"card {masked} is blocked: see the service desk", card_no
            )
        if info.card_type is None:
            return LoadResult(
                TapOutcome.UNKNOWN_CARD, f"card {masked} has an unknown card type", card_no
            )
        for grey in self.journal.unresolved_grey(card_no):
            recover_grey(self.journal, purse, grey, self.terminal_id)
        delivered: list[TapRecord] = []
        pending = [
            load
            for load in self.lists.pending_loads(card_no, now)
            if not self._delivered(load.load_id, card_no)
        ]
        for load in pending[:LOADS_PER_PRESENTATION_MAX]:
            record, failed = self._load(purse, info.card_type.label, load, now)
            if failed is not None:
                return replace(failed, delivered=tuple(delivered))
            delivered.append(record)
        if not delivered:
            return LoadResult(TapOutcome.OK, f"no pending top-up for card {masked}", card_no)
        total = sum(r.amount_fen for r in delivered)
        balance = delivered[-1].balance_after_fen
        return LoadResult(
            TapOutcome.OK,
            f"OK loaded {yuan(total)} balance {yuan(balance)}",
            card_no,
            tuple(delivered),
        )

    def _load(
        self, purse: Purse, card_type: str, load: PendingLoad, now: datetime
    ) -> tuple[TapRecord, LoadResult | None]:
        masked = mask_card_number(load.card_no)
        try:
            init = purse.initialize_load(self.load_key_index, load.amount_fen, self.terminal_id)
        except OutOfRange:
            empty = _placeholder(load, now, card_type)
            return empty, LoadResult(
                TapOutcome.CARD_ERROR, f"card {masked} cannot hold that much", load.card_no
            )
        versions = self.lists.versions()
        draft = TapRecord(
            kind=RecordKind.LOAD,
            status=RecordStatus.GREY,
            terminal_seq=0,
            card_no=load.card_no,
            card_counter=init.online_counter,
            txn_type=int(TxnType.EP_LOAD),
            amount_fen=load.amount_fen,
            balance_before_fen=init.balance_fen,
            balance_after_fen=init.balance_fen + load.amount_fen,
            occurred_at=now,
            tac=None,
            card_type=card_type,
            fare_rule="load",
            load_id=load.load_id,
            deny_list_version=versions.deny,
            action_list_version=versions.action,
        )
        intent = self.journal.append_intent(draft)
        record = replace(draft, terminal_seq=self.serials.next())
        self.journal.append_grey(intent, record)
        try:
            mac2 = self.host.authorize_load(
                load.card_no, init, load.amount_fen, int(TxnType.EP_LOAD), now
            )
        except MacInvalid:
            self.journal.mark_not_debited(record.terminal_seq)
            return record, LoadResult(
                TapOutcome.CARD_ERROR, f"card {masked} failed authentication", load.card_no
            )
        try:
            tac = purse.credit_load(now, mac2)
        except TransportError:
            if self.on_record:
                self.on_record()
            return record, LoadResult(
                TapOutcome.TORN, f"card {masked} left too early: present it again", load.card_no
            )
        except PurseMacInvalid:
            self.journal.mark_not_debited(record.terminal_seq)
            return record, LoadResult(
                TapOutcome.CARD_ERROR, f"card {masked} refused the load", load.card_no
            )
        self.journal.complete(record.terminal_seq, tac, draft.balance_after_fen)
        if self.on_record:
            self.on_record()
        return replace(record, status=RecordStatus.COMPLETE, tac=tac.hex().upper()), None


def _placeholder(load: PendingLoad, now: datetime, card_type: str) -> TapRecord:
    return TapRecord(
        RecordKind.LOAD,
        RecordStatus.GREY,
        0,
        load.card_no,
        0,
        int(TxnType.EP_LOAD),
        0,
        0,
        0,
        now,
        None,
        card_type,
    )
