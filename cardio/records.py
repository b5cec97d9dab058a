"""Byte layouts of the purse files and responses (PURSE.md §2.3, §2.6) as frozen dataclasses.

Each type has a strict `parse(raw)` (exact length, valid BCD and enum codes, else
`cardio.errors.ResponseMalformed`) and an `encode()` the software card uses. Pure, no I/O.

Card type (onecard's codes, stored twice, like the Shanghai/MZT cards do):
0015 byte 28 (issuer discretionary data, first byte) and 0016 byte 0 (card type flag):
`01` adult, `02` student, `03` senior, `04` disabled. 0015 byte 29 is the deposit in yuan (0-255).

Card number: the 16 BCD digits of 0015 bytes 12-19 (the rightmost 8 bytes of the application
serial, also the key-diversification input). Bytes 10-11 of the serial are `00 00` on onecard cards.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime

from cardio.crypto import Algorithm
from cardio.errors import ApduError, ResponseMalformed

__all__ = [
    "HOLDER_LEN",
    "LOG_RECORD_LEN",
    "MANAGEMENT_LEN",
    "PUBLIC_INFO_LEN",
    "TRANSIT_RECORD_LEN",
    "TRIP_RECORD_LEN",
    "CardType",
    "DebitResult",
    "HolderInfo",
    "JourneyState",
    "LoadInit",
    "LogRecord",
    "ManagementInfo",
    "PublicInfo",
    "PurchaseInit",
    "TransactionProof",
    "TransitRecord",
    "TripRecord",
    "card_number_bytes",
    "decode_bcd_date",
    "decode_bcd_date_time",
    "encode_bcd_date",
    "format_card_number",
    "mask_card_number",
]

PUBLIC_INFO_LEN = 30  # 0015
HOLDER_LEN = 55  # 0016
MANAGEMENT_LEN = 60  # 0017
LOG_RECORD_LEN = 23  # 0018
TRANSIT_RECORD_LEN = 128  # 001A, onecard's bus/metro record "27 02 7D"
TRIP_RECORD_LEN = 48  # 001E
TRANSIT_RECORD_ID = 0x02  # UPDATE CAPP DATA CACHE P1 and the second byte of the record
TRANSIT_RECORD_TAG = 0x27


class CardType(enum.IntEnum):
    """Rider category of the card (0015 byte 28 and 0016 byte 0)."""

    ADULT = 0x01
    STUDENT = 0x02
    SENIOR = 0x03
    DISABLED = 0x04

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> CardType:
        try:
            return cls[label.upper()]
        except KeyError:
            raise ValueError(
                f"unknown card type {label!r}: one of adult, student, senior, disabled"
            ) from None


def _need(raw: bytes, length: int, what: str) -> bytes:
    if not isinstance(raw, bytes | bytearray) or len(raw) != length:
        got = len(raw) if isinstance(raw, bytes | bytearray) else type(raw).__name__
        raise ResponseMalformed(f"{what}: expected {length} bytes, got {got}")
    return bytes(raw)


def _is_bcd(raw: bytes) -> bool:
    return all((b >> 4) <= 9 and (b & 0x0F) <= 9 for b in raw)


def decode_bcd_date(raw: bytes, what: str = "date") -> date | None:
    """YYYYMMDD BCD; all-zero or all-FF (seen on cards without an expiry) means 'not set' (None)."""
    raw = _need(raw, 4, what)
    if raw in (bytes(4), b"\xff" * 4):
        return None
    if not _is_bcd(raw):
        raise ResponseMalformed(f"{what} is not BCD")
    text = raw.hex()
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        raise ResponseMalformed(f"{what} is not a calendar date") from None


def encode_bcd_date(value: date | None) -> bytes:
    if value is None:
        return bytes(4)
    return bytes.fromhex(f"{value.year:04d}{value.month:02d}{value.day:02d}")


def decode_bcd_date_time(raw: bytes, what: str = "date and time") -> datetime | None:
    """YYYYMMDDhhmmss BCD (card-local time, naive); all-zero means 'not set' (None)."""
    raw = _need(raw, 7, what)
    if raw == bytes(7):
        return None
    if not _is_bcd(raw):
        raise ResponseMalformed(f"{what} is not BCD")
    t = raw.hex()
    try:
        return datetime(
            int(t[:4]), int(t[4:6]), int(t[6:8]), int(t[8:10]), int(t[10:12]), int(t[12:14])
        )
    except ValueError:
        raise ResponseMalformed(f"{what} is not a valid date and time") from None


def _encode_date_time(value: datetime | None) -> bytes:
    if value is None:
        return bytes(7)
    v = value
    return bytes.fromhex(
        f"{v.year:04d}{v.month:02d}{v.day:02d}{v.hour:02d}{v.minute:02d}{v.second:02d}"
    )


def card_number_bytes(card_no: str) -> bytes:
    """16 decimal digits -> the 8 BCD bytes of 0015[12..19]."""
    if (
        not isinstance(card_no, str)
        or len(card_no) != 16
        or not card_no.isdigit()
        or not card_no.isascii()
    ):
        raise ApduError("a card number is 16 decimal digits")
    return bytes.fromhex(card_no)


def format_card_number(raw: bytes) -> str:
    """The 8 bytes of the card number as text: its digits when BCD, else upper-case hex."""
    return bytes(raw).hex().upper()


def mask_card_number(card_no: str) -> str:
    """For logs and screens: the first 4 and last 4 digits only."""
    if len(card_no) <= 8:
        return "*" * len(card_no)
    return card_no[:4] + "*" * (len(card_no) - 8) + card_no[-4:]


def _u(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


@dataclass(frozen=True, slots=True)
class PublicInfo:
    """0015, public application basic data (30 bytes, PURSE.md §2.6.1)."""

    issuer_id: bytes  # 8
    app_type: int
    app_version: int
    app_serial: bytes  # 10; bytes 2..9 = card number
    valid_from: date | None
    valid_until: date | None
    card_type_code: int  # byte 28, see CardType
    deposit_yuan: int  # byte 29

    @property
    def card_no(self) -> str:
        return format_card_number(self.app_serial[2:])

    @property
    def card_type(self) -> CardType | None:
        """The onecard card type, or None for a foreign card with another code here."""
        try:
            return CardType(self.card_type_code)
        except ValueError:
            return None

    def is_valid_on(self, day: date) -> bool:
        if self.valid_from is not None and day < self.valid_from:
            return False
        return not (self.valid_until is not None and day > self.valid_until)

    @classmethod
    def parse(cls, raw: bytes) -> PublicInfo:
        raw = _need(raw, PUBLIC_INFO_LEN, "public information file 0015")
        return cls(
            issuer_id=raw[0:8],
            app_type=raw[8],
            app_version=raw[9],
            app_serial=raw[10:20],
            valid_from=decode_bcd_date(raw[20:24], "application start date"),
            valid_until=decode_bcd_date(raw[24:28], "application expiry date"),
            card_type_code=raw[28],
            deposit_yuan=raw[29],
        )

    def encode(self) -> bytes:
        out = (
            _need(self.issuer_id, 8, "issuer id")
            + bytes((self.app_type, self.app_version))
            + _need(self.app_serial, 10, "application serial")
            + encode_bcd_date(self.valid_from)
            + encode_bcd_date(self.valid_until)
            + bytes((self.card_type_code, self.deposit_yuan))
        )
        return out


@dataclass(frozen=True, slots=True)
class HolderInfo:
    """0016, cardholder data (55 bytes, PURSE.md §2.6.2). Names are UTF-8 on onecard cards,
    GB2312 on some others: `name` decodes UTF-8, then GB2312, else shows hex."""

    card_type_code: int
    staff_flag: int
    name_raw: bytes  # 20, zero-padded
    id_number_raw: bytes  # 32, zero-padded
    id_type: int

    @property
    def name(self) -> str:
        return _text(self.name_raw)

    @property
    def id_number(self) -> str:
        return _text(self.id_number_raw)

    @property
    def card_type(self) -> CardType | None:
        try:
            return CardType(self.card_type_code)
        except ValueError:
            return None

    @classmethod
    def parse(cls, raw: bytes) -> HolderInfo:
        raw = _need(raw, HOLDER_LEN, "cardholder file 0016")
        return cls(raw[0], raw[1], raw[2:22], raw[22:54], raw[54])

    @classmethod
    def build(
        cls,
        card_type: CardType,
        name: str,
        id_number: str = "",
        id_type: int = 0,
        staff: bool = False,
    ) -> HolderInfo:
        return cls(
            int(card_type),
            int(staff),
            _field(name, 20, "holder name"),
            _field(id_number, 32, "ID number"),
            id_type,
        )

    def encode(self) -> bytes:
        return (
            bytes((self.card_type_code, self.staff_flag))
            + _need(self.name_raw, 20, "holder name")
            + _need(self.id_number_raw, 32, "ID number")
            + bytes((self.id_type,))
        )


def _text(raw: bytes) -> str:
    raw = raw.rstrip(b"\x00").rstrip(b"\xff").rstrip(b" ")
    for codec in ("utf-8", "gb2312"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return raw.hex().upper()


def _field(text: str, length: int, what: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > length:
        raise ApduError(f"{what} is longer than {length} bytes in UTF-8")
    return raw + bytes(length - len(raw))


@dataclass(frozen=True, slots=True)
class ManagementInfo:
    """0017, management information (JT/T 978, 60 bytes, PURSE.md §2.6.3)."""

    country_code: bytes  # 4
    province_code: bytes  # 2
    city_code: bytes  # 2
    interoperable: bool
    card_category: int

    @classmethod
    def parse(cls, raw: bytes) -> ManagementInfo:
        raw = _need(raw, MANAGEMENT_LEN, "management file 0017")
        return cls(raw[0:4], raw[4:6], raw[6:8], _u(raw[8:10]) == 1, raw[10])

    def encode(self) -> bytes:
        return (
            _need(self.country_code, 4, "country code")
            + _need(self.province_code, 2, "province code")
            + _need(self.city_code, 2, "city code")
            + (1 if self.interoperable else 0).to_bytes(2, "big")
            + bytes((self.card_category,))
            + bytes(49)
        )


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One record of the transaction log 0018 (23 bytes, PURSE.md §2.6.4)."""

    counter: int  # the card serial AFTER the transaction (INIT counter + 1)
    overdraft_limit_fen: int
    amount_fen: int
    txn_type: int
    terminal_id: bytes
    occurred_at: datetime | None  # card-local time

    @classmethod
    def parse(cls, raw: bytes) -> LogRecord:
        raw = _need(raw, LOG_RECORD_LEN, "transaction log record")
        when = raw[16:23]
        return cls(
            counter=_u(raw[0:2]),
            overdraft_limit_fen=_u(raw[2:5]),
            amount_fen=_u(raw[5:9]),
            txn_type=raw[9],
            terminal_id=raw[10:16],
            occurred_at=decode_bcd_date_time(when, "log record time"),
        )

    def encode(self) -> bytes:
        return (
            self.counter.to_bytes(2, "big")
            + self.overdraft_limit_fen.to_bytes(3, "big")
            + self.amount_fen.to_bytes(4, "big")
            + bytes((self.txn_type,))
            + _need(self.terminal_id, 6, "terminal id")
            + _encode_date_time(self.occurred_at)
        )


@dataclass(frozen=True, slots=True)
class PurchaseInit:
    """Response of INITIALIZE FOR (CAPP) PURCHASE (15 bytes)."""

    balance_fen: int
    offline_counter: int
    overdraft_limit_fen: int
    key_version: int
    algorithm: Algorithm
    card_random: bytes

    @classmethod
    def parse(cls, raw: bytes) -> PurchaseInit:
        raw = _need(raw, 15, "INITIALIZE FOR PURCHASE response")
        return cls(
            _u(raw[0:4]), _u(raw[4:6]), _u(raw[6:9]), raw[9], _algorithm(raw[10]), raw[11:15]
        )

    def encode(self) -> bytes:
        return (
            self.balance_fen.to_bytes(4, "big")
            + self.offline_counter.to_bytes(2, "big")
            + self.overdraft_limit_fen.to_bytes(3, "big")
            + bytes((self.key_version, int(self.algorithm)))
            + _need(self.card_random, 4, "card random")
        )


@dataclass(frozen=True, slots=True)
class LoadInit:
    """Response of INITIALIZE FOR LOAD (16 bytes)."""

    balance_fen: int
    online_counter: int
    key_version: int
    algorithm: Algorithm
    card_random: bytes
    mac1: bytes

    @classmethod
    def parse(cls, raw: bytes) -> LoadInit:
        raw = _need(raw, 16, "INITIALIZE FOR LOAD response")
        return cls(_u(raw[0:4]), _u(raw[4:6]), raw[6], _algorithm(raw[7]), raw[8:12], raw[12:16])

    def encode(self) -> bytes:
        return (
            self.balance_fen.to_bytes(4, "big")
            + self.online_counter.to_bytes(2, "big")
            + bytes((self.key_version, int(self.algorithm)))
            + _need(self.card_random, 4, "card random")
            + _need(self.mac1, 4, "MAC1")
        )


def _algorithm(code: int) -> Algorithm:
    try:
        return Algorithm(code)
    except ValueError:
        raise ResponseMalformed(f"unknown algorithm identifier {code:02X}") from None


@dataclass(frozen=True, slots=True)
class DebitResult:
    """Response of DEBIT FOR (CAPP) PURCHASE: TAC then MAC2."""

    tac: bytes
    mac2: bytes

    @classmethod
    def parse(cls, raw: bytes) -> DebitResult:
        raw = _need(raw, 8, "DEBIT response")
        return cls(raw[:4], raw[4:])

    def encode(self) -> bytes:
        return self.tac + self.mac2


@dataclass(frozen=True, slots=True)
class TransactionProof:
    """Response of GET TRANSACTION PROOF: MAC (MAC2 of a purchase) then TAC."""

    mac: bytes
    tac: bytes

    @classmethod
    def parse(cls, raw: bytes) -> TransactionProof:
        raw = _need(raw, 8, "GET TRANSACTION PROOF response")
        return cls(raw[:4], raw[4:])

    def encode(self) -> bytes:
        return self.mac + self.tac


class JourneyState(enum.IntEnum):
    NONE = 0x00
    BOARDED = 0x01
    ALIGHTED = 0x02


@dataclass(frozen=True, slots=True)
class TransitRecord:
    """The composite (CAPP) transit record in 001A: onecard's layout of the JT/T 978 "27 02" record.

    Written by UPDATE CAPP DATA CACHE (`80 DC 02 D0 80`) and committed atomically with the debit.
    Offsets (128 bytes): 0 tag 27, 1 record id 02, 2 length 7D, 3 valid flag, 4 journey state,
    5 line (4, binary), 9 stop (2), 11 direction, 12 terminal id (6), 18 tapped at (7 BCD),
    25 fare charged (4), 29 max fare for an open journey (4), 33 transfers used in the journey,
    34 journey started at (7 BCD), 41 cap day (4 BCD), 45 spent on the cap day (4),
    49 rides on the cap day (2), 51..127 reserved (00). Not covered by MAC1 or TAC (PURSE.md §2.3).
    """

    state: JourneyState = JourneyState.NONE
    line: int = 0
    stop: int = 0
    direction: int = 0
    terminal_id: bytes = bytes(6)
    tapped_at: datetime | None = None
    fare_fen: int = 0
    fare_max_fen: int = 0
    transfers_used: int = 0
    journey_started_at: datetime | None = None
    cap_day: date | None = None
    cap_spent_fen: int = 0
    cap_rides: int = 0

    @classmethod
    def parse(cls, raw: bytes) -> TransitRecord:
        raw = _need(raw, TRANSIT_RECORD_LEN, "transit record 001A")
        if (
            raw[0] != TRANSIT_RECORD_TAG
            or raw[1] != TRANSIT_RECORD_ID
            or raw[2] != TRANSIT_RECORD_LEN - 3
        ):
            raise ResponseMalformed("transit record 001A: not a 27 02 7D record")
        if raw[3] == 0:  # never written
            return cls()
        try:
            state = JourneyState(raw[4])
        except ValueError:
            raise ResponseMalformed("transit record 001A: unknown journey state") from None
        return cls(
            state=state,
            line=_u(raw[5:9]),
            stop=_u(raw[9:11]),
            direction=raw[11],
            terminal_id=raw[12:18],
            tapped_at=decode_bcd_date_time(raw[18:25], "transit tap time"),
            fare_fen=_u(raw[25:29]),
            fare_max_fen=_u(raw[29:33]),
            transfers_used=raw[33],
            journey_started_at=decode_bcd_date_time(raw[34:41], "journey start"),
            cap_day=decode_bcd_date(raw[41:45], "cap day"),
            cap_spent_fen=_u(raw[45:49]),
            cap_rides=_u(raw[49:51]),
        )

    def encode(self) -> bytes:
        try:
            body = (
                bytes(
                    (
                        TRANSIT_RECORD_TAG,
                        TRANSIT_RECORD_ID,
                        TRANSIT_RECORD_LEN - 3,
                        0x01,
                        int(self.state),
                    )
                )
                + self.line.to_bytes(4, "big")
                + self.stop.to_bytes(2, "big")
                + bytes((self.direction,))
                + _need(self.terminal_id, 6, "terminal id")
                + _encode_date_time(self.tapped_at)
                + self.fare_fen.to_bytes(4, "big")
                + self.fare_max_fen.to_bytes(4, "big")
                + bytes((self.transfers_used,))
                + _encode_date_time(self.journey_started_at)
                + encode_bcd_date(self.cap_day)
                + self.cap_spent_fen.to_bytes(4, "big")
                + self.cap_rides.to_bytes(2, "big")
            )
        except (OverflowError, ValueError) as error:
            raise ApduError(f"transit record field out of range: {error}") from None
        return body + bytes(TRANSIT_RECORD_LEN - len(body))


@dataclass(frozen=True, slots=True)
class TripRecord:
    """001E public-transport process record (48 bytes, PURSE.md §2.6.5), cyclic."""

    kind: int  # 03 EP entry/board, 04 EP exit/alight, 06 EP single ride, ...
    terminal_no: bytes  # 8 BCD
    industry: int  # 01 metro, 02 bus, ...
    line_station: bytes  # 7
    amount_fen: int
    balance_after_fen: int
    occurred_at: datetime | None
    city_code: bytes  # 2
    institution: bytes  # 8

    @classmethod
    def parse(cls, raw: bytes) -> TripRecord:
        raw = _need(raw, TRIP_RECORD_LEN, "trip record 001E")
        return cls(
            kind=raw[0],
            terminal_no=raw[1:9],
            industry=raw[9],
            line_station=raw[10:17],
            amount_fen=_u(raw[17:21]),
            balance_after_fen=_u(raw[21:25]),
            occurred_at=decode_bcd_date_time(raw[25:32], "trip time"),
            city_code=raw[32:34],
            institution=raw[34:42],
        )

    def encode(self) -> bytes:
        return (
            bytes((self.kind,))
            + _need(self.terminal_no, 8, "terminal number")
            + bytes((self.industry,))
            + _need(self.line_station, 7, "line/station")
            + self.amount_fen.to_bytes(4, "big")
            + self.balance_after_fen.to_bytes(4, "big")
            + _encode_date_time(self.occurred_at)
            + _need(self.city_code, 2, "city code")
            + _need(self.institution, 8, "institution")
            + bytes(6)
        )
