"""The software card: the card side of the purse command set, for tests, the demo and onecard's own cards.

It enforces what a real card enforces: MAC1 (or the load MAC2) must verify before the purse changes
(9302 otherwise); the purse update, counter, log, CAPP records and proof change together or not at all;
the balance stays within 0..limit; counters only go up; the last purchase and load stay provable
through GET TRANSACTION PROOF (tear recovery). It never logs keys or APDU payloads.

Public API:
- `SoftCard.issue(key_store, card_no, card_type, ...) -> SoftCard`: personalise a card.
- `SoftCard.process(apdu: bytes) -> bytes`: one C-APDU in, one R-APDU out (never raises for
  anything a terminal can send); `power_on()` / `power_off()` / `reset()` end the session; `atr`.
- `SoftCard.load(path)` / `save(path)` / `to_json()` / `from_json(text)`: the CARD.json file (0600),
  kept in cardio.cardfile; `SoftCard.open(path)` (or `persist=`) saves on every change.
- `state_version`: increases on every persistent change (the bridge saves when it moves).
- Read-only views: `balance_fen`, `online_counter`, `offline_counter`, `public_info`, `card_no`.

GET TRANSACTION PROOF answers for the LAST purchase (P2 06/09) and the LAST load (P2 02) only, as
real cards do: MAC2 ‖ TAC of the purchase, and the host's MAC2 that the card accepted ‖ TAC for a
load (which MAC a real card returns for a load was not found in the sources). Anything else: 9406.
UPDATE BINARY of 0016/0017 needs line protection (CLA 04, MAC with the card's maintenance key over
GET CHALLENGE): 6984 without a challenge, 6987 without a MAC, 6988 for a wrong one, 6982 in clear.
Not implemented (6D00): GET MESSAGE of 住建部 cards, PIN, ED (存折).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date

from cardio import crypto
from cardio.apdu import CommandApdu, encode_tlv
from cardio.cardfile import (
    CARD_FILE_FORMAT,
    CardFile,
    read_card_file,
    state_from_json,
    state_to_json,
    write_card_file,
)
from cardio.cardstate import BALANCE_LIMIT_FEN_DEFAULT, COUNTER_MAX, CardState, Proof
from cardio.crypto import CryptoInputError, TxnType
from cardio.errors import ApduError, CardFileError
from cardio.invariant import InvariantError, invariant
from cardio.keystore import KeyStore
from cardio.purse import (
    AID_TUNION_EP,
    EP_DF_FID,
    LOG_RECORDS_MAX,
    PPSE_NAME,
    SFI_HOLDER,
    SFI_LOG,
    SFI_MANAGEMENT,
    SFI_PUBLIC_INFO,
    SFI_TRANSIT,
    SFI_TRIPS,
    TRIP_RECORDS_MAX,
)
from cardio.records import (
    TRANSIT_RECORD_ID,
    TRANSIT_RECORD_LEN,
    TRIP_RECORD_LEN,
    CardType,
    HolderInfo,
    LogRecord,
    ManagementInfo,
    PublicInfo,
    TransitRecord,
    card_number_bytes,
    mask_card_number,
)

__all__ = [
    "BALANCE_LIMIT_FEN_DEFAULT",
    "CARD_FILE_FORMAT",
    "PersistHook",
    "Proof",
    "SOFTCARD_ATR",
    "CardState",
    "InvariantError",
    "SoftCard",
]

# TS 3B, T0 88 (TD1, 8 historical bytes), TD1 80 (TD2), TD2 01 (T=1), "ONECARD1", TCK.
_ATR_BODY = bytes.fromhex("888001") + b"ONECARD1"


def _tck(body: bytes) -> int:
    value = 0
    for b in body:
        value ^= b
    return value


SOFTCARD_ATR = b"\x3b" + _ATR_BODY + bytes((_tck(_ATR_BODY),))

SW_OK = b"\x90\x00"
ISSUER_APP_TYPE = 0x01  # as on the Changsha card; MZT terminals read 02 as "abnormal"
ISSUER_APP_VERSION = 0x01


class _Refuse(Exception):
    """Internal: answer this status word."""

    def __init__(self, sw: int) -> None:
        super().__init__(f"{sw:04X}")
        self.sw = sw


@dataclass(slots=True)
class _Session:
    """Volatile: lost at power off (the card pulled away)."""

    kind: str  # "purchase" or "load"
    txn_type: int
    amount_fen: int
    terminal_id: bytes
    card_random: bytes
    counter: int
    balance_fen: int
    session_key: bytes = field(repr=False)
    capp_cache: list[tuple[int, int, bytes]] = field(default_factory=list)  # (sfi, p1, record)


PersistHook = Callable[[CardState], None]


class SoftCard:
    """One software card. Not thread-safe: one reader (bridge or transport) drives it.

    The card itself does no I/O. `persist`, if given, is called with the new state after every
    command that changed it, before the answer leaves the card; if it raises, the command did not
    happen (the state is restored, as a card torn before its write) and the error propagates.
    """

    def __init__(
        self,
        state: CardState,
        random_source: Callable[[int], bytes] = secrets.token_bytes,
        persist: PersistHook | None = None,
    ) -> None:
        self.state = state
        self.state_version = 0
        self._random = random_source
        self._persist = persist
        self._selected: bytes | None = None  # "ppse" / "ep" / None
        self._session: _Session | None = None
        self._challenge: bytes | None = None

    def __repr__(self) -> str:
        return f"SoftCard(card_no={mask_card_number(self.card_no)}, balance_fen={self.state.balance_fen})"

    # --- personalisation and persistence ------------------------------------------------------

    @classmethod
    def issue(
        cls,
        key_store: KeyStore,
        card_no: str,
        card_type: CardType = CardType.ADULT,
        holder_name: str = "",
        id_number: str = "",
        balance_fen: int = 0,
        valid_from: date | None = None,
        valid_until: date | None = None,
        balance_limit_fen: int = BALANCE_LIMIT_FEN_DEFAULT,
        deposit_yuan: int = 0,
        city_code: bytes = b"\x00\x00",
    ) -> SoftCard:
        """Personalise a card: files, keys diversified from the key store by the serial, balance."""
        try:
            number = card_number_bytes(card_no)
        except ApduError as error:
            raise CardFileError(str(error)) from None
        if not 0 <= balance_fen <= balance_limit_fen or balance_limit_fen > 0xFFFFFFFF:
            raise CardFileError(
                f"the opening balance {balance_fen} fen is outside 0..{balance_limit_fen} fen "
                "(the card's limit)"
            )
        serial = b"\x00\x00" + number
        info = PublicInfo(
            issuer_id=key_store.issuer_id,
            app_type=ISSUER_APP_TYPE,
            app_version=ISSUER_APP_VERSION,
            app_serial=serial,
            valid_from=valid_from,
            valid_until=valid_until,
            card_type_code=int(card_type),
            deposit_yuan=deposit_yuan,
        )
        try:
            holder = HolderInfo.build(card_type, holder_name, id_number)
        except ApduError as error:
            raise CardFileError(str(error)) from None
        management = ManagementInfo(
            b"\x01\x56\x00\x00", b"\x00\x00", city_code, False, int(card_type)
        )
        state = CardState(
            public_info=info.encode(),
            holder=holder.encode(),
            management=management.encode(),
            keys=key_store.card_keys(serial),
            balance_fen=balance_fen,
            balance_limit_fen=balance_limit_fen,
            transit_records={TRANSIT_RECORD_ID: _blank_transit_record()},
        )
        return cls(state)

    def to_json(self) -> str:
        """The CARD.json text of this card (cardio.cardfile)."""
        return state_to_json(self.state)

    @classmethod
    def from_json(cls, text: str) -> SoftCard:
        return cls(state_from_json(text))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write CARD.json atomically (temporary file + fsync + rename), mode 0600: it holds card keys."""
        write_card_file(path, self.state)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SoftCard:
        """The card in the CARD.json at `path`; saving it stays the caller's business."""
        return cls(read_card_file(path))

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> SoftCard:
        """The card in the CARD.json at `path`, saved back there on every persistent change."""
        return cls(read_card_file(path), persist=CardFile(path))

    # --- views -------------------------------------------------------------------------------

    @property
    def public_info(self) -> PublicInfo:
        return PublicInfo.parse(self.state.public_info)

    @property
    def card_no(self) -> str:
        return self.state.public_info[12:20].hex().upper()

    @property
    def app_serial(self) -> bytes:
        return self.state.public_info[10:20]

    @property
    def balance_fen(self) -> int:
        return self.state.balance_fen

    @property
    def online_counter(self) -> int:
        return self.state.online_counter

    @property
    def offline_counter(self) -> int:
        return self.state.offline_counter

    @property
    def atr(self) -> bytes:
        return SOFTCARD_ATR

    # --- the contact interface ---------------------------------------------------------------

    def power_on(self) -> None:
        self._end_session()

    def power_off(self) -> None:
        self._end_session()

    def reset(self) -> None:
        self._end_session()

    def _end_session(self) -> None:
        self._selected = None
        self._session = None
        self._challenge = None

    def process(self, apdu: bytes) -> bytes:
        """One command APDU in, one response APDU out."""
        try:
            command = CommandApdu.decode(apdu)
        except ApduError:
            return b"\x67\x00"
        # A command answered 6Cxx must not have happened: the terminal resends it with the right
        # Le, so a DEBIT or CREDIT refused for its Le leaves the purse, session and files as they were.
        before = (self.state, self.state_version, self._selected, self._session, self._challenge)
        try:
            data = self._dispatch(command)
        except _Refuse as refusal:
            return refusal.sw.to_bytes(2, "big")
        le = command.le
        if le is not None and le < 256 and len(data) > le:
            self.state, self.state_version, self._selected, self._session, self._challenge = before
            return bytes((0x6C, len(data) & 0xFF))  # wrong Le: tell the terminal the right one
        if self._persist is not None and self.state_version != before[1]:
            try:
                self._persist(self.state)
            except BaseException:
                self.state, self.state_version, self._selected, self._session, self._challenge = (
                    before
                )
                raise
        return data + SW_OK

    def _dispatch(self, c: CommandApdu) -> bytes:
        if c.cla not in (0x00, 0x04, 0x80):
            raise _Refuse(0x6E00)
        handler = _HANDLERS.get((c.cla, c.ins))
        if handler is None:
            raise _Refuse(0x6D00)
        return handler(self, c)

    # --- ISO commands ------------------------------------------------------------------------

    def _select(self, c: CommandApdu) -> bytes:
        fci = self._select_fci(c)
        return b"" if c.p2 == 0x0C else fci  # P2 0C: "no response data" (ISO 7816-4)

    def _select_fci(self, c: CommandApdu) -> bytes:
        if c.p1 == 0x04 and c.p2 in (0x00, 0x0C):
            if c.data == PPSE_NAME:
                self._end_session()
                self._selected = b"ppse"
                return self._ppse_fci()
            if c.data == AID_TUNION_EP:
                self._end_session()
                self._selected = b"ep"
                return self._ep_fci()
            raise _Refuse(0x6A82)
        if c.p1 == 0x00 and c.p2 in (0x00, 0x0C):
            if c.data == EP_DF_FID:
                self._end_session()
                self._selected = b"ep"
                return self._ep_fci()
            if c.data in (b"\x3f\x00", b""):
                self._end_session()
                return b""
            raise _Refuse(0x6A82)
        raise _Refuse(0x6A86)

    def _ep_fci(self) -> bytes:
        proprietary = encode_tlv(0x9F08, b"\x01") + encode_tlv(0x9F0C, self.state.public_info)
        return encode_tlv(0x6F, encode_tlv(0x84, AID_TUNION_EP) + encode_tlv(0xA5, proprietary))

    def _ppse_fci(self) -> bytes:
        entry = (
            encode_tlv(0x4F, AID_TUNION_EP)
            + encode_tlv(0x50, b"ONECARD EP")
            + encode_tlv(0x87, b"\x01")
        )
        return encode_tlv(
            0x6F,
            encode_tlv(0x84, PPSE_NAME)
            + encode_tlv(0xA5, encode_tlv(0xBF0C, encode_tlv(0x61, entry))),
        )

    def _require_ep(self) -> None:
        if self._selected != b"ep":
            raise _Refuse(0x6A82)

    def _read_binary(self, c: CommandApdu) -> bytes:
        self._require_ep()
        if c.data:
            raise _Refuse(0x6700)
        if not c.p1 & 0x80:
            raise _Refuse(0x6986)  # no current EF: only SFI addressing
        files = {
            SFI_PUBLIC_INFO: self.state.public_info,
            SFI_HOLDER: self.state.holder,
            SFI_MANAGEMENT: self.state.management,
        }
        content = files.get(c.p1 & 0x1F)
        if content is None:
            raise _Refuse(0x6A82)
        if c.p2 >= len(content):
            raise _Refuse(0x6B00)
        want = c.le or 256
        return content[c.p2 : c.p2 + want]

    def _read_record(self, c: CommandApdu) -> bytes:
        self._require_ep()
        if c.data:
            raise _Refuse(0x6700)
        mode = c.p2 & 0x07
        if mode not in (0x04, 0x05) or c.p1 == 0:
            raise _Refuse(0x6A86)
        sfi = c.p2 >> 3
        if sfi == SFI_LOG:
            records = list(enumerate(self.state.log, start=1))
        elif sfi == SFI_TRIPS:
            records = list(enumerate(self.state.trips, start=1))
        elif sfi == SFI_TRANSIT:
            records = sorted(self.state.transit_records.items())
        else:
            raise _Refuse(0x6A82)
        if mode == 0x04:  # record number P1
            for number, record in records:
                if number == c.p1:
                    return record
            raise _Refuse(0x6A83)
        # 101: all records from P1 to the last (ISO 7816-4; sinpolib reads the log with 00 B2 01 C5 00),
        # as many whole records as Le allows.
        room = c.le or 256
        chosen = b""
        for number, record in records:
            if number < c.p1:
                continue
            if len(chosen) + len(record) > room:
                break
            chosen += record
        if not chosen:
            raise _Refuse(0x6A83)
        return chosen

    def _get_challenge(self, c: CommandApdu) -> bytes:
        if c.data or c.le not in (4, 8):
            raise _Refuse(0x6700)
        self._challenge = self._random(c.le)
        return self._challenge

    def _update_binary_plain(self, c: CommandApdu) -> bytes:
        self._require_ep()
        raise _Refuse(0x6982)  # the files are updated under line protection only (CLA 04)

    def _update_binary_secure(self, c: CommandApdu) -> bytes:
        """UPDATE BINARY with line protection (PURSE.md §3.7) of 0016 or 0017, maintenance key."""
        self._require_ep()
        challenge, self._challenge = self._challenge, None  # a challenge serves one command
        if not c.p1 & 0x80:
            raise _Refuse(0x6986)
        field_name = {SFI_HOLDER: "holder", SFI_MANAGEMENT: "management"}.get(c.p1 & 0x1F)
        if field_name is None:
            raise _Refuse(0x6982 if c.p1 & 0x1F == SFI_PUBLIC_INFO else 0x6A82)
        if len(c.data) < 5:
            raise _Refuse(0x6987)  # no MAC
        if challenge is None:
            raise _Refuse(0x6984)
        body, mac = c.data[:-4], c.data[-4:]
        keys = self.state.keys
        header = bytes((c.cla, c.ins, c.p1, c.p2, len(c.data)))
        expected = crypto.secure_messaging_mac(
            keys.maintenance, challenge[:4], header + body, keys.algorithm
        )
        if not secrets.compare_digest(expected, mac):
            raise _Refuse(0x6988)
        content: bytes = getattr(self.state, field_name)
        if c.p2 + len(body) > len(content):
            raise _Refuse(0x6700)
        updated = content[: c.p2] + body + content[c.p2 + len(body) :]
        if field_name == "holder":
            self.state = replace(self.state, holder=updated)
        else:
            self.state = replace(self.state, management=updated)
        self.state_version += 1
        return b""

    # --- purse commands ----------------------------------------------------------------------

    def _get_balance(self, c: CommandApdu) -> bytes:
        self._require_ep()
        # P1 00..03 are all read by T-Union readers (Metrodroid); with no overdraft used they agree.
        if c.p1 > 0x03 or c.p2 != 0x02:
            raise _Refuse(0x6A86)
        return self.state.balance_fen.to_bytes(4, "big")

    def _initialize(self, c: CommandApdu) -> bytes:
        self._require_ep()
        self._session = None  # a new INITIALIZE abandons any open one
        if c.p2 != 0x02 or c.p1 not in (0x00, 0x01, 0x03):
            raise _Refuse(0x6A86)
        if len(c.data) != 11:
            raise _Refuse(0x6700)
        key_index = c.data[0]
        amount = int.from_bytes(c.data[1:5], "big")
        terminal_id = c.data[5:11]
        s, keys = self.state, self.state.keys
        card_random = self._random(4)
        if c.p1 == 0x00:  # load
            if key_index != keys.dlk_index:
                raise _Refuse(0x9403)
            if s.online_counter >= COUNTER_MAX or s.balance_fen + amount > s.balance_limit_fen:
                raise _Refuse(0x9402)
            session_key = crypto.load_session_key(
                keys.dlk, card_random, s.online_counter, keys.algorithm
            )
            mac1 = crypto.load_mac1(
                session_key, s.balance_fen, amount, TxnType.EP_LOAD, terminal_id, keys.algorithm
            )
            self._session = _Session(
                "load",
                TxnType.EP_LOAD,
                amount,
                terminal_id,
                card_random,
                s.online_counter,
                s.balance_fen,
                session_key,
            )
            return (
                s.balance_fen.to_bytes(4, "big")
                + s.online_counter.to_bytes(2, "big")
                + bytes((keys.dlk_version, int(keys.algorithm)))
                + card_random
                + mac1
            )
        if key_index != keys.dpk_index:
            raise _Refuse(0x9403)
        if s.offline_counter >= COUNTER_MAX:
            raise _Refuse(0x9402)
        # The purse never goes below zero (the 4-byte balance is unsigned; onecard's books have no
        # negative card money): the overdraft limit is reported in the INIT answer, never lent.
        if amount > s.balance_fen:
            raise _Refuse(0x9401)
        txn_type = TxnType.CAPP_PURCHASE if c.p1 == 0x03 else TxnType.EP_PURCHASE
        # The session key needs the terminal serial, which only DEBIT brings: keep the card key.
        self._session = _Session(
            "purchase",
            txn_type,
            amount,
            terminal_id,
            card_random,
            s.offline_counter,
            s.balance_fen,
            keys.dpk,
        )
        return (
            s.balance_fen.to_bytes(4, "big")
            + s.offline_counter.to_bytes(2, "big")
            + s.overdraft_limit_fen.to_bytes(3, "big")
            + bytes((keys.dpk_version, int(keys.algorithm)))
            + card_random
        )

    def _update_capp_data_cache(self, c: CommandApdu) -> bytes:
        self._require_ep()
        session = self._session
        if session is None or session.txn_type != TxnType.CAPP_PURCHASE:
            raise _Refuse(0x6985)
        if c.p2 & 0x07:
            raise _Refuse(0x6A86)
        sfi = c.p2 >> 3
        if sfi == SFI_TRANSIT:
            if len(c.data) != TRANSIT_RECORD_LEN:
                raise _Refuse(0x6700)
            if c.p1 == 0 or c.p1 != c.data[1]:
                raise _Refuse(0x6A80)  # the record id is P1 and the record's second byte
        elif sfi == SFI_TRIPS:
            if len(c.data) != TRIP_RECORD_LEN:
                raise _Refuse(0x6700)
            if c.p1 != 0:
                raise _Refuse(0x6A86)
        else:
            raise _Refuse(0x6A82)
        if len(session.capp_cache) >= 4:
            raise _Refuse(0x6A84)  # not enough memory: a bounded cache
        session.capp_cache.append((sfi, c.p1, c.data))
        return b""

    def _debit(self, c: CommandApdu) -> bytes:
        self._require_ep()
        session = self._session
        if c.p1 != 0x01 or c.p2 != 0x00:
            raise _Refuse(0x6A86)
        if session is None or session.kind != "purchase":
            raise _Refuse(0x6985)
        if len(c.data) != 15:
            raise _Refuse(0x6700)
        self._session = None  # one DEBIT per INITIALIZE, whatever happens below
        terminal_serial = int.from_bytes(c.data[0:4], "big")
        date_time, mac1 = c.data[4:11], c.data[11:15]
        keys, s = self.state.keys, self.state
        sespk = self._verify_purchase_mac1(session, terminal_serial, date_time, mac1)
        # Re-check against the current purse (nothing can have changed in between on this card).
        invariant(
            s.balance_fen == session.balance_fen and s.offline_counter == session.counter,
            "purse moved",
        )
        new_balance = s.balance_fen - session.amount_fen
        invariant(new_balance >= 0, "balance below zero")
        tac = crypto.purchase_tac(
            keys.dtk,
            session.amount_fen,
            session.txn_type,
            session.terminal_id,
            terminal_serial,
            date_time,
            keys.algorithm,
        )
        mac2 = crypto.purchase_mac2(sespk, session.amount_fen, keys.algorithm)
        counter_after = session.counter + 1
        entry = LogRecord(
            counter_after,
            s.overdraft_limit_fen,
            session.amount_fen,
            session.txn_type,
            session.terminal_id,
            None,
        ).encode()[:16] + bytes(date_time)
        transit, trips = _capp_records_after(s, session)
        # Commit: every field of the transaction in one step.
        self.state = replace(
            s,
            balance_fen=new_balance,
            offline_counter=counter_after,
            log=[entry, *s.log][:LOG_RECORDS_MAX],
            transit_records=transit,
            trips=trips,
            last_purchase=Proof(session.txn_type, counter_after, mac2, tac),
        )
        self.state_version += 1
        return tac + mac2

    def _verify_purchase_mac1(
        self, session: _Session, terminal_serial: int, date_time: bytes, mac1: bytes
    ) -> bytes:
        """The purchase session key, once MAC1 verifies (9302 otherwise, 6A80 for bad input)."""
        algorithm = self.state.keys.algorithm
        try:
            sespk = crypto.purchase_session_key(
                session.session_key,
                session.card_random,
                session.counter,
                terminal_serial,
                algorithm,
            )
            expected = crypto.purchase_mac1(
                sespk,
                session.amount_fen,
                session.txn_type,
                session.terminal_id,
                date_time,
                algorithm=algorithm,
            )
        except CryptoInputError:
            raise _Refuse(0x6A80) from None  # e.g. a date that is not BCD
        if not secrets.compare_digest(expected, mac1):
            raise _Refuse(0x9302)
        return sespk

    def _credit_load(self, c: CommandApdu) -> bytes:
        self._require_ep()
        session = self._session
        if c.p1 != 0x00 or c.p2 != 0x00:
            raise _Refuse(0x6A86)
        if session is None or session.kind != "load":
            raise _Refuse(0x6985)
        if len(c.data) != 11:
            raise _Refuse(0x6700)
        self._session = None
        date_time, mac2 = c.data[0:7], c.data[7:11]
        keys, s = self.state.keys, self.state
        try:
            expected = crypto.load_mac2(
                session.session_key,
                session.amount_fen,
                session.txn_type,
                session.terminal_id,
                date_time,
                keys.algorithm,
            )
        except CryptoInputError:
            raise _Refuse(0x6A80) from None
        if not secrets.compare_digest(expected, mac2):
            raise _Refuse(0x9302)
        invariant(
            s.balance_fen == session.balance_fen and s.online_counter == session.counter,
            "purse moved",
        )
        new_balance = s.balance_fen + session.amount_fen
        invariant(new_balance <= s.balance_limit_fen, "balance above its limit")
        tac = crypto.load_tac(
            keys.dtk,
            new_balance,
            session.counter,
            session.amount_fen,
            session.txn_type,
            session.terminal_id,
            date_time,
            keys.algorithm,
        )
        counter_after = session.counter + 1
        entry = LogRecord(
            counter_after,
            s.overdraft_limit_fen,
            session.amount_fen,
            session.txn_type,
            session.terminal_id,
            None,
        ).encode()[:16] + bytes(date_time)
        self.state = replace(
            s,
            balance_fen=new_balance,
            online_counter=counter_after,
            log=[entry, *s.log][:LOG_RECORDS_MAX],
            last_load=Proof(session.txn_type, counter_after, mac2, tac),
        )
        self.state_version += 1
        return tac

    def _get_transaction_proof(self, c: CommandApdu) -> bytes:
        self._require_ep()
        if c.p1 != 0x00 or len(c.data) != 2:
            raise _Refuse(0x6700 if c.p1 == 0x00 else 0x6A86)
        counter_after = int.from_bytes(c.data, "big")
        if c.p2 in (TxnType.EP_PURCHASE, TxnType.CAPP_PURCHASE):
            proof = self.state.last_purchase
        elif c.p2 == TxnType.EP_LOAD:
            proof = self.state.last_load
        else:
            raise _Refuse(0x6A86)
        if proof is None or proof.txn_type != c.p2 or proof.counter_after != counter_after:
            raise _Refuse(0x9406)
        return proof.mac + proof.tac


_HANDLERS: dict[tuple[int, int], Callable[[SoftCard, CommandApdu], bytes]] = {
    (0x00, 0xA4): SoftCard._select,
    (0x00, 0xB0): SoftCard._read_binary,
    (0x00, 0xB2): SoftCard._read_record,
    (0x00, 0x84): SoftCard._get_challenge,
    (0x00, 0xD6): SoftCard._update_binary_plain,
    (0x04, 0xD6): SoftCard._update_binary_secure,
    (0x80, 0x5C): SoftCard._get_balance,
    (0x80, 0x50): SoftCard._initialize,
    (0x80, 0xDC): SoftCard._update_capp_data_cache,
    (0x80, 0x54): SoftCard._debit,
    (0x80, 0x52): SoftCard._credit_load,
    (0x80, 0x5A): SoftCard._get_transaction_proof,
}


def _capp_records_after(
    state: CardState, session: _Session
) -> tuple[dict[int, bytes], list[bytes]]:
    """001A and 001E as the purchase's UPDATE CAPP DATA CACHE commands leave them."""
    transit = dict(state.transit_records)
    trips = list(state.trips)
    for sfi, p1, record in session.capp_cache:
        if sfi == SFI_TRANSIT:
            transit[p1] = record
        else:
            trips = [record, *trips][:TRIP_RECORDS_MAX]
    return transit, trips


def _blank_transit_record() -> bytes:
    raw = bytearray(TransitRecord().encode())
    raw[3] = 0x00  # valid flag: never written
    return bytes(raw)
