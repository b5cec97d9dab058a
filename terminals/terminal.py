"""The tap flow of a bus validator and a clinic terminal, over any card transport and any PSAM.

select -> read card -> deny list and validity -> recover a torn tap of this card -> read the
transit state -> price -> INITIALIZE -> journal intent -> SAM MAC1 -> journal grey record ->
UPDATE CAPP DATA CACHE -> DEBIT -> SAM verifies MAC2 -> journal completion -> "OK".
A record is durable before "OK" is shown; a debit is never sent without its grey record on disk.
It never prints a full card number or key material.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from cardio.apdu import CommandApdu, Transport
from cardio.crypto import CARD_TIME_ZONE, TxnType
from cardio.errors import (
    ApplicationLocked,
    CardioError,
    CardStatusError,
    InsufficientFunds,
    ProofNotAvailable,
    PurseMacInvalid,
    TransportError,
)
from cardio.money import yuan
from cardio.purse import SFI_TRANSIT, Purse
from cardio.records import (
    TRANSIT_RECORD_ID,
    TRANSIT_RECORD_LEN,
    PublicInfo,
    mask_card_number,
)
from terminals.capp import TapPlace, decode_transit_record, encode_transit_record
from terminals.client import ClearingClient
from terminals.errors import (
    InvariantError,
    MacInvalid,
    NoFare,
    SamError,
    ServiceUnavailable,
    UploadRefused,
    invariant,
)
from terminals.fares.engine import FareQuote
from terminals.fares.feed import FareFeed
from terminals.fares.sectional import Step, StepKind, plan_tap
from terminals.journal import (
    SHORT_TEXT_MAX,
    Journal,
    RecordKind,
    RecordStatus,
    TapRecord,
    short_text,
)
from terminals.lists import ListStore
from terminals.sam import Psam

RETAP_WINDOW_DEFAULT = timedelta(minutes=2)  # a re-presentation this soon completes the torn tap
PURCHASE_TYPES = (int(TxnType.EP_PURCHASE), int(TxnType.CAPP_PURCHASE))


class TapOutcome(StrEnum):
    """What the passenger is shown, in order of the checks."""

    OK = "ok"
    RECOVERED = "recovered"  # a torn tap of this card was completed: it is paid
    CARD_REMOVED = "card_removed"  # the card left before anything was decided
    DENIED = "denied"
    NOT_VALID = "not_valid"  # expired or not yet valid
    UNKNOWN_CARD = "unknown_card"
    LOCKED = "locked"
    NO_FARE = "no_fare"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    TORN = "torn"  # the card left during the debit: present it again
    CARD_ERROR = "card_error"  # MAC1 refused or MAC2 wrong


@dataclass(frozen=True, slots=True)
class TapResult:
    outcome: TapOutcome
    message: str
    card_no: str | None = None
    record: TapRecord | None = None
    quote: FareQuote | None = None
    recovered: tuple[TapRecord, ...] = ()
    loaded: tuple[TapRecord, ...] = ()  # top-ups written onto the card in this presentation
    # Every purchase of this presentation, in order: a forgotten tap-off's maximum fare comes
    # before this tap's own (terminals.fares.sectional); `record` is the last.
    charged: tuple[TapRecord, ...] = ()

    @property
    def paid(self) -> bool:
        return self.outcome in (TapOutcome.OK, TapOutcome.RECOVERED)


class RecoveryOutcome(StrEnum):
    COMPLETED = "completed"
    NOT_DEBITED = "not_debited"
    UNDECIDED = "undecided"  # the card moved on and its proof is gone: clearing decides


def recover_grey(
    journal: Journal, purse: Purse, grey: TapRecord, terminal_id: bytes
) -> RecoveryOutcome:
    """Settle a torn record against the card now in the field (PURSE.md §6.3).

    The card's log says whether the counter moved by this terminal's transaction: if it did,
    GET TRANSACTION PROOF gives the TAC (completed); if the counter never reached it, or another
    transaction used it, the debit never happened (not debited); if the card moved on and its
    proof is gone, clearing decides from the card's later counters (undecided, stays grey).
    """
    is_load = grey.kind is RecordKind.LOAD
    kinds = (int(TxnType.EP_LOAD),) if is_load else PURCHASE_TYPES
    target = grey.card_counter + 1
    log = [entry for entry in purse.read_log() if entry.txn_type in kinds]
    entry = next((e for e in log if e.counter == target), None)
    if entry is None:
        current = max((e.counter for e in log), default=0)
        if current >= target:
            return RecoveryOutcome.UNDECIDED  # the cyclic log no longer shows that counter
        journal.mark_not_debited(grey.terminal_seq)
        return RecoveryOutcome.NOT_DEBITED
    if entry.terminal_id != terminal_id or entry.amount_fen != grey.amount_fen:
        # That counter value was used by another transaction: ours never happened.
        journal.mark_not_debited(grey.terminal_seq)
        return RecoveryOutcome.NOT_DEBITED
    try:
        proof = purse.get_transaction_proof(grey.txn_type, target)
    except ProofNotAvailable:
        return RecoveryOutcome.UNDECIDED
    journal.complete(grey.terminal_seq, proof.tac, grey.balance_after_fen)
    return RecoveryOutcome.COMPLETED


class PurseTerminal:
    """What every purse terminal shares: card checks, torn-tap recovery and the journaled debit."""

    def __init__(
        self,
        journal: Journal,
        psam: Psam,
        lists: ListStore,
        *,
        purchase_key_index: int = 1,
        clock: Callable[[], datetime] | None = None,
        retap_window: timedelta = RETAP_WINDOW_DEFAULT,
        on_record: Callable[[], None] | None = None,
    ) -> None:
        self.journal = journal
        self.psam = psam
        self.lists = lists
        self.purchase_key_index = purchase_key_index
        self.clock = clock or (lambda: datetime.now(UTC))
        self.retap_window = retap_window
        self.on_record = on_record  # e.g. Uploader.wake: must never block
        psam.select()
        self.terminal_id = psam.terminal_id()
        self.terminal_id_hex = self.terminal_id.hex().upper()

    def _now(self) -> datetime:
        return self.clock().replace(microsecond=0)

    # --- card checks ------------------------------------------------------------------------

    def _read_card(self, purse: Purse, now: datetime) -> tuple[PublicInfo | None, TapResult | None]:
        selected = purse.select()
        info = selected.public_info or purse.read_public_info()
        card_no = info.card_no
        masked = mask_card_number(card_no)
        if len(card_no) != 16 or not card_no.isdigit():
            # Not one of ours (a foreign issuer's serial is not BCD digits): no fare rule knows it.
            return info, TapResult(TapOutcome.UNKNOWN_CARD, f"card {masked} is not a city card")
        if self.lists.is_denied(card_no):
            return info, TapResult(
                TapOutcome.DENIED, f"card {masked} is blocked: see the service desk", card_no
            )
        if not info.is_valid_on(now.astimezone(CARD_TIME_ZONE).date()):
            return info, TapResult(
                TapOutcome.NOT_VALID, f"card {masked} is not valid today", card_no
            )
        if info.card_type is None:
            return info, TapResult(
                TapOutcome.UNKNOWN_CARD, f"card {masked} has an unknown card type", card_no
            )
        return info, None

    # --- torn taps ------------------------------------------------------------------------------

    def recover(self, purse: Purse, grey: TapRecord) -> RecoveryOutcome:
        """Settle a grey record of the card now in the field (PURSE.md §6.3)."""
        return recover_grey(self.journal, purse, grey, self.terminal_id)

    def _recover_card(
        self, purse: Purse, card_no: str, now: datetime
    ) -> tuple[list[TapRecord], TapResult | None]:
        """Recover every torn record of this card; a fresh re-tap of a completed one is the answer."""
        recovered: list[TapRecord] = []
        retap: TapRecord | None = None
        for grey in self.journal.unresolved_grey(card_no):
            if self.recover(purse, grey) is RecoveryOutcome.COMPLETED:
                done = self.journal.record(grey.terminal_seq)
                invariant(done is not None, "a completed record is in the journal")
                recovered.append(done)
                if now - grey.occurred_at <= self.retap_window:
                    retap = done
        if retap is not None:
            if self.on_record:
                self.on_record()
            return recovered, TapResult(
                TapOutcome.RECOVERED,
                f"OK {yuan(retap.amount_fen)} (completed) balance {yuan(retap.balance_after_fen)}",
                card_no,
                retap,
                recovered=tuple(recovered),
            )
        return recovered, None

    # --- the journaled debit ------------------------------------------------------------------

    def _purchase(
        self,
        purse: Purse,
        info: PublicInfo,
        kind: RecordKind,
        amount_fen: int,
        rule: str,
        now: datetime,
        recovered: list[TapRecord],
        ok_message: str,
        **record_fields: Any,
    ) -> TapResult:
        """Debit a whole amount with no concession (a bill, a clinic visit's patient share):
        refuse it when the balance is short, else journal it and debit the card."""
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
                info.card_no,
            )
        if info.card_type is None:  # _read_card answers UNKNOWN_CARD before this
            raise InvariantError("a card of unknown type got past _read_card")
        versions = self.lists.versions()
        draft = TapRecord(
            kind=kind,
            status=RecordStatus.GREY,
            terminal_seq=0,
            card_no=info.card_no,
            card_counter=init.offline_counter,
            txn_type=int(TxnType.EP_PURCHASE),
            amount_fen=amount_fen,
            balance_before_fen=init.balance_fen,
            balance_after_fen=init.balance_fen - amount_fen,
            occurred_at=now,
            tac=None,
            card_type=info.card_type.label,
            full_fare_fen=amount_fen,  # no transport concession: nothing to claim from a subsidy
            fare_rule=rule,
            deny_list_version=versions.deny,
            action_list_version=versions.action,
            **record_fields,
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
            TapOutcome.OK, ok_message, info.card_no, record, recovered=tuple(recovered)
        )

    def _debit(
        self,
        purse: Purse,
        draft: TapRecord,
        init_counter: int,
        card_random: bytes,
        key_version: int,
        algorithm: object,
        now: datetime,
        capp_record: Callable[[], bytes] | None,
    ) -> tuple[TapRecord, TapResult | None]:
        intent = self.journal.append_intent(draft)
        masked = mask_card_number(draft.card_no)
        try:
            sam = self.psam.init_for_purchase(
                card_random,
                init_counter,
                draft.amount_fen,
                draft.txn_type,
                now,
                key_version,
                algorithm,  # type: ignore[arg-type]
                draft.card_no,
            )
        except SamError as error:
            # No serial was given out (the SAM refused): the intent stays an orphan, no record.
            return draft, TapResult(
                TapOutcome.CARD_ERROR,
                f"card {masked} not accepted by this terminal's SAM ({error.sw:04X})",
                draft.card_no,
            )
        record = replace(draft, terminal_seq=sam.terminal_serial)
        self.journal.append_grey(intent, record)
        try:
            if capp_record is not None:
                purse.update_capp_data_cache(capp_record())
            debit = purse.debit(sam.terminal_serial, now, sam.mac1)
        except TransportError:
            if self.on_record:
                self.on_record()
            return record, TapResult(
                TapOutcome.TORN,
                f"card {masked} left too early: present it again",
                draft.card_no,
                record,
            )
        except PurseMacInvalid:
            self.journal.mark_not_debited(record.terminal_seq)
            return record, TapResult(
                TapOutcome.CARD_ERROR, f"card {masked} refused the terminal", draft.card_no
            )
        try:
            self.psam.verify_mac2(debit.mac2)
        except MacInvalid:
            # The card says it paid (TAC given): keep the record for clearing, refuse the ride.
            self.journal.complete(record.terminal_seq, debit.tac, draft.balance_after_fen)
            return record, TapResult(
                TapOutcome.CARD_ERROR, f"card {masked} failed authentication", draft.card_no
            )
        self.journal.complete(record.terminal_seq, debit.tac, draft.balance_after_fen)
        done = replace(record, status=RecordStatus.COMPLETE, tac=debit.tac.hex().upper())
        if self.on_record:
            self.on_record()
        return done, None


class CardLoader(Protocol):
    """What a load-capable validator needs of a load kiosk (terminals.kiosk.LoadKiosk)."""

    def has_pending(self, card_no: str, now: datetime) -> bool: ...

    def deliver(self, transport: Transport) -> Any: ...


class Validator(PurseTerminal):
    """A validator on a vehicle of one route, at its current stop (or at a metro gate).

    On a line of a tap_on_off network (onecard_networks.txt) the same validator takes the tap on
    and the tap off: terminals.fares.sectional decides which a tap is from the card's record.

    With a `loader` (a LoadKiosk sharing this journal and the SAM's serial store) it is a
    load-capable validator: pending online top-ups are written onto the card before the fare.
    """

    def __init__(
        self,
        journal: Journal,
        psam: Psam,
        feed: FareFeed,
        lists: ListStore,
        route_id: str,
        stop_id: str,
        *,
        loader: CardLoader | None = None,
        vehicle_id: str = "",
        **options: object,
    ) -> None:
        super().__init__(journal, psam, lists, **options)  # type: ignore[arg-type]
        self.feed = feed
        self.route_id = route_id
        self.stop_id = stop_id
        self.loader = loader
        # The vehicle this validator rides (its tag goes on the card at boarding: a tap on
        # another vehicle of the line is a forgotten tap-off); "" for a station gate.
        self.vehicle_id = vehicle_id

    def move_to(self, route_id: str, stop_id: str, vehicle_id: str | None = None) -> None:
        """The bus reached another stop (or changed line); a validator moved to another
        vehicle says which."""
        self.route_id, self.stop_id = route_id, stop_id
        if vehicle_id is not None:
            self.vehicle_id = vehicle_id

    def tap(self, transport: Transport) -> TapResult:
        """One presentation of a card; never raises for anything a card or passenger can do."""
        purse = Purse(transport)
        now = self._now()
        try:
            return self._tap(purse, now)
        except TransportError:
            return TapResult(TapOutcome.CARD_REMOVED, "card removed: present it again")
        except ApplicationLocked:
            return TapResult(TapOutcome.LOCKED, "card is locked: see the service desk")
        except (CardStatusError, CardioError) as error:
            return TapResult(
                TapOutcome.CARD_ERROR, f"card error ({error.code}): see the service desk"
            )

    def _tap(self, purse: Purse, now: datetime) -> TapResult:
        info, refused = self._read_card(purse, now)
        if refused is not None or info is None:
            return refused  # type: ignore[return-value]
        card_no = info.card_no
        recovered, retap = self._recover_card(purse, card_no, now)
        if retap is not None:
            return retap
        loaded: tuple[TapRecord, ...] = ()
        if self.loader is not None and self.loader.has_pending(card_no, now):
            delivery = self.loader.deliver(purse.transport)
            loaded = tuple(delivery.delivered)
            if delivery.outcome is not TapOutcome.OK:
                return TapResult(
                    delivery.outcome, delivery.message, card_no, recovered=tuple(recovered)
                )
            purse.select()  # the load ended the card's session; start the purchase afresh
        # The raw record (not cardio's parsed view): onecard's extension lives in its reserved bytes.
        read_transit = CommandApdu(
            0x00, 0xB2, TRANSIT_RECORD_ID, (SFI_TRANSIT << 3) | 0x04, le=TRANSIT_RECORD_LEN
        )
        raw = purse.send(read_transit).expect(TRANSIT_RECORD_LEN, "001A")
        card_type = info.card_type
        if card_type is None:  # _read_card answers UNKNOWN_CARD before this
            raise InvariantError("a card of unknown type got past _read_card")
        try:
            state = decode_transit_record(raw, self.feed, card_type.label)
            steps = plan_tap(
                self.feed,
                card_type.label,
                state,
                self.route_id,
                self.stop_id,
                now,
                vehicle=self.vehicle_id,
            )
        except NoFare:
            return TapResult(TapOutcome.NO_FARE, "no fare for this line: tell the driver", card_no)
        done: list[TapRecord] = []
        for step in steps:
            if step.kind is StepKind.ON_BOARD:
                return TapResult(
                    TapOutcome.OK,
                    "already on board: tap again when you get off",
                    card_no,
                    quote=step.quote,
                    recovered=tuple(recovered),
                    loaded=loaded,
                )
            paid, failed = self._pay_step(purse, card_no, card_type.label, step, now)
            if failed is not None or paid is None:
                failed = failed or TapResult(TapOutcome.CARD_ERROR, "card error", card_no)
                return replace(failed, recovered=tuple(recovered), charged=tuple(done))
            done.append(paid)
        last = steps[-1]
        record = done[-1]
        message = f"OK {yuan(last.fare_fen)} balance {yuan(record.balance_after_fen)}"
        if last.kind is StepKind.BOARD:
            message = (
                f"boarded: tap again when you get off (balance {yuan(record.balance_after_fen)})"
            )
        if last.quote.transfer_rule:
            message += " (transfer)"
        if len(steps) > 1:
            message += f" (no tap-off on line {steps[0].route_id}: {yuan(steps[0].fare_fen)})"
        if loaded:
            message += f" (loaded {yuan(sum(r.amount_fen for r in loaded))})"
        return TapResult(
            TapOutcome.OK,
            message,
            card_no,
            record,
            last.quote,
            tuple(recovered),
            loaded,
            tuple(done),
        )

    def _pay_step(
        self, purse: Purse, card_no: str, card_type: str, step: Step, now: datetime
    ) -> tuple[TapRecord | None, TapResult | None]:
        """One debit of a tap, with the card state the step leaves written atomically with it."""
        quote = step.quote
        try:
            init = purse.initialize_purchase(
                self.purchase_key_index, quote.fare_fen, self.terminal_id, capp=True
            )
        except InsufficientFunds:
            init = None
        if init is None or init.balance_fen < quote.fare_fen:
            # A card's overdraft is never used: the journal and the books hold no negative purse.
            what = "an unfinished ride" if step.kind is StepKind.UNFINISHED else "this ride"
            return None, TapResult(
                TapOutcome.INSUFFICIENT_BALANCE,
                f"balance too low for {yuan(quote.fare_fen)} ({what}): please top up",
                card_no,
                quote=quote,
            )
        versions = self.lists.versions()
        prefix = "" if step.kind is StepKind.LEG else f"{step.kind.value}:"
        fare_rule = short_text(
            prefix + quote.fare_rule + (f"|{quote.transfer_rule}" if quote.transfer_rule else "")
        )
        draft = TapRecord(
            kind=RecordKind.PURCHASE,
            status=RecordStatus.GREY,
            terminal_seq=0,
            card_no=card_no,
            card_counter=init.offline_counter,
            txn_type=int(TxnType.CAPP_PURCHASE),
            amount_fen=quote.fare_fen,
            balance_before_fen=init.balance_fen,
            balance_after_fen=init.balance_fen - quote.fare_fen,
            occurred_at=now,
            tac=None,
            card_type=card_type,
            rider_category=quote.rider_category_id,
            full_fare_fen=quote.full_fare_fen,
            fare_rule=fare_rule,
            route_id=step.route_id,
            stop_id=step.stop_id,
            deny_list_version=versions.deny,
            action_list_version=versions.action,
        )
        place = TapPlace(
            self.route_id,
            self.stop_id,
            self.terminal_id,
            quote.fare_fen,
            alighted=step.kind is StepKind.ALIGHT,
        )
        record, failed = self._debit(
            purse,
            draft,
            init.offline_counter,
            init.card_random,
            init.key_version,
            init.algorithm,
            now,
            lambda: encode_transit_record(quote.state, place),
        )
        if failed is not None:
            return record, replace(failed, quote=quote)
        return record, None


@dataclass(frozen=True, slots=True)
class ClinicVisit:
    visit_id: str
    bill_fen: int


class ClinicTerminal(PurseTerminal):
    """A clinic counter: the insurer pays its share (online), the card pays the rest."""

    def __init__(
        self,
        journal: Journal,
        psam: Psam,
        lists: ListStore,
        client_factory: Callable[[], ClearingClient] | None,
        **options: object,
    ) -> None:
        super().__init__(journal, psam, lists, **options)  # type: ignore[arg-type]
        self.client_factory = client_factory

    def _split(self, visit: ClinicVisit, card_no: str, now: datetime) -> tuple[int, int, str, bool]:
        """(insured_fen, patient_fen, rule, offline_fallback)."""
        if self.client_factory is None:
            return 0, visit.bill_fen, "offline_fallback", True
        try:
            with self.client_factory() as client:
                split = client.clinic_split(visit.visit_id, card_no, visit.bill_fen, now)
        except (ServiceUnavailable, UploadRefused):
            return 0, visit.bill_fen, "offline_fallback", True
        return (
            split.insured_fen,
            split.patient_fen,
            short_text(f"{split.scheme}:{split.rule}"),
            False,
        )

    def charge(self, transport: Transport, visit: ClinicVisit) -> TapResult:
        purse = Purse(transport)
        now = self._now()
        try:
            return self._charge(purse, visit, now)
        except TransportError:
            return TapResult(TapOutcome.CARD_REMOVED, "card removed: present it again")
        except ApplicationLocked:
            return TapResult(TapOutcome.LOCKED, "card is locked: see the service desk")
        except (CardStatusError, CardioError) as error:
            return TapResult(
                TapOutcome.CARD_ERROR, f"card error ({error.code}): see the service desk"
            )

    def _charge(self, purse: Purse, visit: ClinicVisit, now: datetime) -> TapResult:
        if visit.bill_fen <= 0 or not 1 <= len(visit.visit_id) <= SHORT_TEXT_MAX:
            raise ValueError(
                "a clinic visit has an id of 1-64 characters and a positive bill in fen"
            )
        info, refused = self._read_card(purse, now)
        if refused is not None or info is None:
            return refused  # type: ignore[return-value]
        card_no = info.card_no
        recovered, _retap = self._recover_card(purse, card_no, now)
        # One visit is paid once: a re-presentation after a torn charge, or the same visit
        # submitted twice, shows the payment already made.
        paid = [
            r
            for r in self.journal.records_of_card(card_no)
            if r.visit_id == visit.visit_id and r.status is RecordStatus.COMPLETE
        ]
        if paid:
            return TapResult(
                TapOutcome.RECOVERED,
                f"visit {visit.visit_id} is paid: {yuan(paid[-1].amount_fen)} by card",
                card_no,
                paid[-1],
                recovered=tuple(recovered),
            )
        insured, patient, rule, fallback = self._split(visit, card_no, now)
        message = f"OK paid {yuan(patient)}, insurance {yuan(insured)}"
        if fallback:
            message += " (insurer offline: full bill charged, claim settled later)"
        return self._purchase(
            purse,
            info,
            RecordKind.CLINIC,
            patient,
            rule,
            now,
            recovered,
            message,
            insured_fen=insured,
            visit_id=visit.visit_id,
            offline_fallback=fallback,
        )
