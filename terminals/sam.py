"""The terminal's secure access module (SAM): a software PSAM behind the PSAM command interface.

It holds the issuer's purchase master key (never the TAC key) and its own transaction serial,
computes MAC1 (`80 70`) and verifies MAC2 (`80 72`) exactly as PURSE.md §2.4 describes, so a
hardware PSAM in a second reader slot can replace it: the terminal only ever talks to a
`cardio.apdu.Transport`. Keys come from a SAM key file (mode 0600); nothing here prints or
logs key material, and the serial is durable on disk before MAC1 leaves the SAM.
"""

from __future__ import annotations

import functools
import hmac
import json
import operator
import stat
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cardio.apdu import CommandApdu, ResponseApdu, Transport, transceive
from cardio.atomicfile import MODE_SECRET, write_text_atomic
from cardio.crypto import (
    TERMINAL_SERIAL_MAX,
    Algorithm,
    CryptoInputError,
    bcd_date_time,
    diversify_key,
    load_mac1,
    load_mac2,
    load_session_key,
    purchase_mac1,
    purchase_mac2,
    purchase_session_key,
)
from cardio.errors import ApduError
from cardio.keystore import KeyKind, KeyStore
from cardio.records import LoadInit, card_number_bytes
from terminals.errors import InvariantError, MacInvalid, SamError, TerminalError

SAM_KEY_FORMAT = "onecard-samkeys/1"
SAM_KEY_FILE_BYTES_MAX = 64 * 1024
PSAM_DF_FID = b"\x10\x01"
SW_OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_CONDITIONS = 0x6985
SW_MAC_INVALID = 0x9302
SW_KEY_NOT_SUPPORTED = 0x9403
SW_OUT_OF_RANGE = 0x9402
SW_INS_NOT_SUPPORTED = 0x6D00
SW_FILE_NOT_FOUND = 0x6A82
SW_WRONG_P1P2 = 0x6B00
SW_WRONG_DATA = 0x6A80


class SamKeyError(TerminalError):
    """The SAM key file is missing, malformed or readable by others."""

    code = "sam_key_error"


class SamSerialCorrupt(TerminalError):
    """The SAM's serial file does not hold a serial: reusing serials would repeat MACs."""

    code = "sam_serial_corrupt"


@dataclass(frozen=True, slots=True)
class SamKey:
    """One issuer master key held by the SAM (index = 密钥标识, version = what cards answer)."""

    kind: KeyKind
    index: int
    version: int
    key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SamKeys:
    """What a terminal's SAM holds: its terminal id and the purchase (and maybe load) master key."""

    terminal_id: bytes  # 6 bytes, the PSAM's 0016 terminal number
    algorithm: Algorithm
    purchase: SamKey = field(repr=False)
    load: SamKey | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.terminal_id) != 6:
            raise SamKeyError("the terminal id is 6 bytes (12 hex digits)")
        if self.purchase.kind is not KeyKind.PURCHASE:
            raise SamKeyError("the SAM's purchase key must be a purchase (DPK) master key")
        if self.load is not None and self.load.kind is not KeyKind.LOAD:
            raise SamKeyError("the SAM's load key must be a load (DLK) master key")


def _key_json(key: SamKey) -> dict[str, object]:
    return {"index": key.index, "version": key.version, "key": key.key.hex().upper()}


def write_sam_keys(keys: SamKeys, path: Path | str, overwrite: bool = False) -> None:
    """Write a SAM key file atomically with mode 0600."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise SamKeyError(f"{path} exists; refusing to overwrite a SAM key file")
    body: dict[str, object] = {
        "format": SAM_KEY_FORMAT,
        "terminal_id": keys.terminal_id.hex().upper(),
        "algorithm": int(keys.algorithm),
        "purchase": _key_json(keys.purchase),
    }
    if keys.load is not None:
        body["load"] = _key_json(keys.load)
    write_text_atomic(path, json.dumps(body, indent=2), mode=MODE_SECRET)


def provision_sam_keys(
    issuer: KeyStore, terminal_id: bytes, path: Path | str, with_load: bool = False
) -> SamKeys:
    """Copy only what a SAM needs out of the issuer key store (never the TAC or maintenance key)."""
    purchase = issuer.master(KeyKind.PURCHASE)
    keys = SamKeys(
        terminal_id=terminal_id,
        algorithm=issuer.algorithm,
        purchase=SamKey(KeyKind.PURCHASE, purchase.index, purchase.version, purchase.key),
        load=None,
    )
    if with_load:
        load = issuer.master(KeyKind.LOAD)
        keys = SamKeys(
            terminal_id,
            issuer.algorithm,
            keys.purchase,
            SamKey(KeyKind.LOAD, load.index, load.version, load.key),
        )
    write_sam_keys(keys, path)
    return keys


def _parse_key(item: object, kind: KeyKind) -> SamKey:
    if not isinstance(item, dict):
        raise SamKeyError(f"the SAM key file needs a {kind} key object")
    try:
        raw = bytes.fromhex(str(item.get("key", "")))
    except ValueError:
        raise SamKeyError(f"the {kind} key is not hex") from None
    index, version = item.get("index", 1), item.get("version", 1)
    if len(raw) != 16 or not isinstance(index, int) or not isinstance(version, int):
        raise SamKeyError(f"the {kind} key must be 16 bytes with integer index and version")
    return SamKey(kind, index, version, raw)


def load_sam_keys(path: Path | str) -> SamKeys:
    """Read a SAM key file; refuses one that group or others may read."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SamKeyError(f"no SAM key file at {path}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SamKeyError(f"the SAM key file {path} is readable by others: chmod 600 {path}")
    if info.st_size > SAM_KEY_FILE_BYTES_MAX:
        raise SamKeyError(f"the SAM key file {path} is too large")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise SamKeyError(f"the SAM key file {path} is not valid JSON") from None
    if not isinstance(body, dict) or body.get("format") != SAM_KEY_FORMAT:
        raise SamKeyError(f"the SAM key file must have format {SAM_KEY_FORMAT!r}")
    try:
        terminal_id = bytes.fromhex(str(body.get("terminal_id", "")))
        algorithm = Algorithm(body.get("algorithm", 0))
    except ValueError:
        raise SamKeyError("the SAM key file has a bad terminal_id or algorithm") from None
    load = _parse_key(body["load"], KeyKind.LOAD) if "load" in body else None
    return SamKeys(terminal_id, algorithm, _parse_key(body.get("purchase"), KeyKind.PURCHASE), load)


class SerialStore:
    """The SAM's 4-byte transaction serial, durable: a value is on disk before it is used."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._last = self._read()

    def _read(self) -> int:
        try:
            text = self.path.read_bytes().strip()
        except FileNotFoundError:
            return 0
        if not (text.isdigit() and int(text) <= TERMINAL_SERIAL_MAX):  # bytes: ASCII digits only
            raise SamSerialCorrupt(
                f"the SAM serial file {self.path} is corrupt (not a serial 0..{TERMINAL_SERIAL_MAX}): "
                "write in it the last seq that `onecard terminal journal` shows, never a lower one"
            )
        return int(text)

    @property
    def last(self) -> int:
        """The last serial handed out (0: none yet)."""
        return self._last

    def next(self) -> int:
        """Allocate the next serial and make it durable (file + directory fsync) before returning."""
        value = self._last + 1
        if value > TERMINAL_SERIAL_MAX:
            raise SamError(
                SW_OUT_OF_RANGE, "the SAM's transaction serial is exhausted: replace the SAM"
            )
        write_text_atomic(self.path, f"{value}\n", mode=MODE_SECRET, encoding="ascii")
        self._last = value
        return value


@dataclass(slots=True)
class _PurchaseSession:
    session_key: bytes = field(repr=False)
    amount_fen: int
    algorithm: Algorithm


class SoftwareSam:
    """A PSAM in software: a `Transport` that answers PSAM APDUs (PURSE.md §2.4).

    Supported: SELECT 1001, READ BINARY 0016 (terminal id), `80 70` INIT SAM FOR PURCHASE
    (N = 1 or 2 diversification factors; the first is the card's 8-byte number), `80 72`
    CREDIT SAM FOR PURCHASE (verify MAC2). Thread-safe; one purchase session at a time.
    """

    def __init__(self, keys: SamKeys, serial_path: Path | str) -> None:
        self._keys = keys
        self.serials = SerialStore(serial_path)
        self._session: _PurchaseSession | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SoftwareSam(terminal_id={self._keys.terminal_id.hex().upper()}, last_serial={self.serials.last})"

    @property
    def last_serial(self) -> int:
        return self.serials.last

    def close(self) -> None:
        self._session = None

    def transmit(self, apdu: bytes) -> bytes:
        try:
            command = CommandApdu.decode(apdu)
        except ApduError:
            return SW_WRONG_LENGTH.to_bytes(2, "big")
        with self._lock:
            data, sw = self._dispatch(command)
        return data + sw.to_bytes(2, "big")

    def _dispatch(self, command: CommandApdu) -> tuple[bytes, int]:
        key = (command.cla, command.ins)
        if key == (0x00, 0xA4):
            if command.data == PSAM_DF_FID:
                return b"", SW_OK
            return b"", SW_FILE_NOT_FOUND
        if key == (0x00, 0xB0):
            if command.p1 == 0x96 and command.p2 == 0x00:
                return self._keys.terminal_id, SW_OK
            return b"", SW_FILE_NOT_FOUND
        if key == (0x80, 0x70):
            return self._init_for_purchase(command)
        if key == (0x80, 0x72):
            return self._verify_mac2(command)
        return b"", SW_INS_NOT_SUPPORTED

    def _init_for_purchase(self, command: CommandApdu) -> tuple[bytes, int]:
        data = command.data
        if command.p1 != 0 or command.p2 != 0:
            return b"", SW_WRONG_P1P2
        if len(data) < 28 or (len(data) - 20) % 8 != 0 or len(data) > 20 + 8 * 2:
            return b"", SW_WRONG_LENGTH
        card_random, counter = data[0:4], int.from_bytes(data[4:6], "big")
        amount_fen, txn_type = int.from_bytes(data[6:10], "big"), data[10]
        date_time, key_version, algorithm_code = data[11:18], data[18], data[19]
        factor = data[20:28]
        purchase = self._keys.purchase
        if key_version != purchase.version or algorithm_code != int(self._keys.algorithm):
            return b"", SW_KEY_NOT_SUPPORTED
        algorithm = self._keys.algorithm
        try:
            bcd_date_time(date_time)
            card_key = diversify_key(purchase.key, factor, algorithm)
        except CryptoInputError:
            return b"", SW_WRONG_DATA
        try:
            serial = self.serials.next()
        except SamError as error:
            return b"", error.sw
        session_key = purchase_session_key(card_key, card_random, counter, serial, algorithm)
        mac1 = purchase_mac1(
            session_key,
            amount_fen,
            txn_type,
            self._keys.terminal_id,
            date_time,
            algorithm=algorithm,
        )
        self._session = _PurchaseSession(session_key, amount_fen, algorithm)
        return serial.to_bytes(4, "big") + mac1, SW_OK

    def _verify_mac2(self, command: CommandApdu) -> tuple[bytes, int]:
        if len(command.data) != 4:
            return b"", SW_WRONG_LENGTH
        session = self._session
        if session is None:
            return b"", SW_CONDITIONS
        expected = purchase_mac2(session.session_key, session.amount_fen, session.algorithm)
        if not hmac.compare_digest(expected, command.data):
            return b"", SW_MAC_INVALID
        self._session = None
        return b"", SW_OK


class SamCardSide:
    """The software SAM as a card (ATR, power): plug it into a reader slot through the vpcd bridge
    and the terminal reaches it over PC/SC exactly as it would a hardware PSAM."""

    # TS 3B, T0 88 (TD1, 8 historical bytes), TD1 80, TD2 01 (T=1), "ONECSAM1", TCK.
    _BODY = bytes.fromhex("888001") + b"ONECSAM1"
    ATR = b"\x3b" + _BODY + bytes((functools.reduce(operator.xor, _BODY, 0),))

    def __init__(self, sam: SoftwareSam) -> None:
        self.sam = sam

    @property
    def atr(self) -> bytes:
        return self.ATR

    def process(self, apdu: bytes) -> bytes:
        return self.sam.transmit(apdu)

    def power_on(self) -> None:
        return None

    def power_off(self) -> None:
        self.sam.close()  # a reset ends any open purchase session


@dataclass(frozen=True, slots=True)
class SamPurchase:
    terminal_serial: int
    mac1: bytes


class Psam:
    """The terminal's view of its PSAM, over any transport (software SAM or a PC/SC reader slot)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._terminal_id: bytes | None = None

    def _send(self, command: CommandApdu) -> ResponseApdu:
        return transceive(self.transport, command)

    def _check(self, response: ResponseApdu, what: str) -> bytes:
        if response.sw != SW_OK:
            raise SamError(response.sw, f"SAM refused {what}: status {response.sw:04X}")
        return response.data

    def select(self) -> None:
        self._check(self._send(CommandApdu(0x00, 0xA4, 0x00, 0x00, PSAM_DF_FID)), "SELECT")

    def terminal_id(self) -> bytes:
        """The 6-byte terminal number from the PSAM's file 0016 (cached)."""
        if self._terminal_id is None:
            raw = self._check(
                self._send(CommandApdu(0x00, 0xB0, 0x96, 0x00, le=6)), "READ BINARY 0016"
            )
            if len(raw) != 6:
                raise SamError(0x6700, "SAM terminal id is not 6 bytes")
            self._terminal_id = raw
        return self._terminal_id

    def init_for_purchase(
        self,
        card_random: bytes,
        offline_counter: int,
        amount_fen: int,
        txn_type: int,
        date_time: datetime | bytes,
        key_version: int,
        algorithm: Algorithm,
        card_no: str,
    ) -> SamPurchase:
        """`80 70`: the SAM allocates its next transaction serial and computes MAC1."""
        data = (
            bytes(card_random)
            + offline_counter.to_bytes(2, "big")
            + amount_fen.to_bytes(4, "big")
            + bytes((txn_type,))
            + bcd_date_time(date_time)
            + bytes((key_version, int(algorithm)))
            + card_number_bytes(card_no)
        )
        raw = self._check(
            self._send(CommandApdu(0x80, 0x70, 0x00, 0x00, data, le=8)), "INIT SAM FOR PURCHASE"
        )
        if len(raw) != 8:
            raise SamError(0x6700, "INIT SAM FOR PURCHASE answer is not 8 bytes")
        return SamPurchase(int.from_bytes(raw[:4], "big"), raw[4:])

    def verify_mac2(self, mac2: bytes) -> None:
        """`80 72`: raises MacInvalid if the card's MAC2 is wrong."""
        response = self._send(CommandApdu(0x80, 0x72, 0x00, 0x00, bytes(mac2)))
        if response.sw == SW_MAC_INVALID:
            raise MacInvalid(
                "MAC2 from the card did not verify: refuse the card and keep the record"
            )
        self._check(response, "CREDIT SAM FOR PURCHASE")


class LoadHost:
    """The load-key function of a load kiosk (a load SAM / host HSM in production).

    Verifies the card's load MAC1 and answers MAC2 for CREDIT FOR LOAD (PURSE.md §3.5).
    """

    def __init__(self, keys: SamKeys) -> None:
        if keys.load is None:
            raise SamKeyError("this SAM key file has no load key: provision it with with_load=True")
        self._keys = keys

    def __repr__(self) -> str:
        return f"LoadHost(terminal_id={self._keys.terminal_id.hex().upper()})"

    @property
    def terminal_id(self) -> bytes:
        return self._keys.terminal_id

    def authorize_load(
        self,
        card_no: str,
        init: LoadInit,
        amount_fen: int,
        txn_type: int,
        date_time: datetime | bytes,
    ) -> bytes:
        """MAC2 for CREDIT FOR LOAD, after checking the card's MAC1 (MacInvalid if it is wrong)."""
        load = self._keys.load
        if load is None:
            raise InvariantError("LoadHost without a load key")
        if init.key_version != load.version or init.algorithm != self._keys.algorithm:
            raise SamError(SW_KEY_NOT_SUPPORTED, "the card's load key version is not held here")
        card_key = diversify_key(load.key, card_number_bytes(card_no), init.algorithm)
        session_key = load_session_key(
            card_key, init.card_random, init.online_counter, init.algorithm
        )
        expected = load_mac1(
            session_key,
            init.balance_fen,
            amount_fen,
            txn_type,
            self._keys.terminal_id,
            algorithm=init.algorithm,
        )
        if not hmac.compare_digest(expected, init.mac1):
            raise MacInvalid("the card's load MAC1 did not verify: not a genuine card")
        return load_mac2(
            session_key,
            amount_fen,
            txn_type,
            self._keys.terminal_id,
            date_time,
            algorithm=init.algorithm,
        )
