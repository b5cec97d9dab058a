"""ISO 7816-4 APDUs: command encoding (cases 1-4, short and extended), responses, status words.

Pure: no I/O. Decoding is strict; anything malformed raises `cardio.errors.ApduError` (or
`ResponseMalformed` for what a card sent), never IndexError or ValueError.

Public API:
- `CommandApdu(cla, ins, p1, p2, data=b"", le=None)`: `.encode()`, `CommandApdu.decode(raw)` (card side),
  `.case` (1-4), `.with_le(le)`.
- `ResponseApdu(data, sw)`: `ResponseApdu.decode(raw)`, `.encode()`, `.ok`, `.check()` (raises the typed
  error of `cardio.errors.STATUS_ERRORS`), `.expect(length)` (check + exact data length).
- `Transport` (protocol: `transmit(apdu: bytes) -> bytes`, `close()`), `transceive(transport, command)`:
  send one command, following 61xx with GET RESPONSE and 6Cxx with a resend (bounded), and return the
  final `ResponseApdu` (status not yet checked).
- `parse_tlv(raw) -> list[Tlv]` (BER-TLV as in FCIs; strict), `find_tlv(items, tag)` (depth-first),
  `encode_tlv(tag, value)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cardio.errors import ApduError, ResponseMalformed, error_for_status

__all__ = [
    "GET_RESPONSE_ROUNDS_MAX",
    "Tlv",
    "encode_tlv",
    "find_tlv",
    "parse_tlv",
    "SW_OK",
    "CommandApdu",
    "ResponseApdu",
    "Transport",
    "transceive",
]

SW_OK = 0x9000
SHORT_DATA_MAX = 255
SHORT_LE_MAX = 256  # Le = 00 means 256 in a short APDU
EXTENDED_DATA_MAX = 65535
EXTENDED_LE_MAX = 65536
GET_RESPONSE_ROUNDS_MAX = 16  # 61xx chains longer than this are a broken card, not data
RESPONSE_BYTES_MAX = EXTENDED_LE_MAX + 2


def _byte(value: int, name: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise ApduError(f"{name} must be a byte (0..255)")
    return value


@dataclass(frozen=True, slots=True)
class CommandApdu:
    """A command APDU. `le=None`: no response data expected; `le=0` is not allowed, use 256."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            _byte(getattr(self, name), name)
        if len(self.data) > EXTENDED_DATA_MAX:
            raise ApduError(f"command data longer than {EXTENDED_DATA_MAX} bytes")
        if self.le is not None and not 1 <= self.le <= EXTENDED_LE_MAX:
            raise ApduError(f"Le must be 1..{EXTENDED_LE_MAX}")

    @property
    def case(self) -> int:
        if not self.data:
            return 1 if self.le is None else 2
        return 3 if self.le is None else 4

    @property
    def extended(self) -> bool:
        return len(self.data) > SHORT_DATA_MAX or (self.le is not None and self.le > SHORT_LE_MAX)

    def with_le(self, le: int) -> CommandApdu:
        return CommandApdu(self.cla, self.ins, self.p1, self.p2, self.data, le)

    def encode(self) -> bytes:
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        if not self.extended:
            body = b""
            if self.data:
                body += bytes((len(self.data),)) + self.data
            if self.le is not None:
                body += bytes((self.le % 256,))
            return header + body
        body = b"\x00"  # extended length marker
        if self.data:
            body += len(self.data).to_bytes(2, "big") + self.data
        if self.le is not None:
            body += (self.le % 65536).to_bytes(2, "big")
        return header + body

    @classmethod
    def decode(cls, raw: bytes) -> CommandApdu:
        """Parse a C-APDU as a card receives it (ISO 7816-3 §12.1.3 cases)."""
        raw = bytes(raw)
        if len(raw) < 4:
            raise ApduError("a command APDU has at least 4 header bytes")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        n = len(body)
        if n == 0:
            return cls(cla, ins, p1, p2)
        if n == 1:
            return cls(cla, ins, p1, p2, le=body[0] or 256)
        if body[0] != 0:  # short cases 3 and 4
            lc = body[0]
            if n == 1 + lc:
                return cls(cla, ins, p1, p2, body[1:])
            if n == 2 + lc:
                return cls(cla, ins, p1, p2, body[1 : 1 + lc], body[-1] or 256)
            raise ApduError("command APDU length does not match Lc")
        # body[0] == 0: extended (or a short case 3/4 with Lc = 0, which ISO forbids)
        if n == 3:
            return cls(cla, ins, p1, p2, le=int.from_bytes(body[1:3], "big") or 65536)
        if n < 3:
            raise ApduError("truncated extended command APDU")
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise ApduError("extended Lc of 0")
        if n == 3 + lc:
            return cls(cla, ins, p1, p2, body[3:])
        if n == 5 + lc:
            return cls(
                cla, ins, p1, p2, body[3 : 3 + lc], int.from_bytes(body[-2:], "big") or 65536
            )
        raise ApduError("extended command APDU length does not match Lc")


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    data: bytes
    sw: int

    @classmethod
    def decode(cls, raw: bytes) -> ResponseApdu:
        if not isinstance(raw, bytes | bytearray) or len(raw) < 2:
            raise ResponseMalformed("a response has at least the two status bytes")
        if len(raw) > RESPONSE_BYTES_MAX:
            raise ResponseMalformed("response longer than any APDU")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))

    def encode(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        return self.sw == SW_OK

    def check(self) -> bytes:
        """The data if the status is 9000, else the typed error of the status word."""
        if self.sw != SW_OK:
            raise error_for_status(self.sw)
        return self.data

    def expect(self, length: int, what: str = "response") -> bytes:
        """`check()`, then insist on exactly `length` data bytes (strict parsing)."""
        data = self.check()
        if len(data) != length:
            raise ResponseMalformed(f"{what}: expected {length} bytes, got {len(data)}")
        return data


@runtime_checkable
class Transport(Protocol):
    """A link to one card: raw C-APDU bytes in, raw R-APDU bytes (data + SW1 SW2) out.

    Transports raise `cardio.errors.TransportError` subclasses, never their library's exceptions.
    """

    def transmit(self, apdu: bytes) -> bytes: ...

    def close(self) -> None: ...


def transceive(transport: Transport, command: CommandApdu) -> ResponseApdu:
    """Send `command`; follow 61xx (GET RESPONSE) and 6Cxx (resend with the right Le), bounded."""
    response = ResponseApdu.decode(transport.transmit(command.encode()))
    collected = b""
    for _ in range(GET_RESPONSE_ROUNDS_MAX):
        if response.sw1 == 0x6C:
            command = command.with_le(response.sw2 or 256)
            response = ResponseApdu.decode(transport.transmit(command.encode()))
        elif response.sw1 == 0x61:
            collected += response.data
            get_response = CommandApdu(0x00, 0xC0, 0x00, 0x00, le=response.sw2 or 256)
            response = ResponseApdu.decode(transport.transmit(get_response.encode()))
        else:
            if collected:
                return ResponseApdu(collected + response.data, response.sw)
            return response
    raise ResponseMalformed(f"more than {GET_RESPONSE_ROUNDS_MAX} rounds of 61xx/6Cxx")


TLV_DEPTH_MAX = 8
TLV_ITEMS_MAX = 256


@dataclass(frozen=True, slots=True)
class Tlv:
    tag: int
    value: bytes
    children: tuple[Tlv, ...] = ()

    @property
    def constructed(self) -> bool:
        first = self.tag.to_bytes((self.tag.bit_length() + 7) // 8 or 1, "big")[0]
        return bool(first & 0x20)


def parse_tlv(raw: bytes, _depth: int = 0) -> list[Tlv]:
    """BER-TLV (ISO 7816-4 §5.2): tags of 1-3 bytes, definite lengths of 1-3 bytes; constructed
    values are parsed recursively. Padding bytes 00/FF between objects are skipped."""
    if _depth > TLV_DEPTH_MAX:
        raise ResponseMalformed("TLV nested too deeply")
    raw = bytes(raw)
    items: list[Tlv] = []
    i, n = 0, len(raw)
    while i < n:
        if raw[i] in (0x00, 0xFF):
            i += 1
            continue
        if len(items) >= TLV_ITEMS_MAX:
            raise ResponseMalformed("too many TLV objects")
        start = i
        first = raw[i]
        i += 1
        if first & 0x1F == 0x1F:
            while True:
                if i >= n:
                    raise ResponseMalformed("truncated TLV tag")
                i += 1
                if not raw[i - 1] & 0x80:
                    break
                if i - start > 3:
                    raise ResponseMalformed("TLV tag longer than 3 bytes")
        tag = int.from_bytes(raw[start:i], "big")
        if i >= n:
            raise ResponseMalformed("truncated TLV length")
        length = raw[i]
        i += 1
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 3 or i + count > n:
                raise ResponseMalformed("bad TLV length")
            length = int.from_bytes(raw[i : i + count], "big")
            i += count
        if i + length > n:
            raise ResponseMalformed("TLV value runs past the end")
        value = raw[i : i + length]
        i += length
        children: tuple[Tlv, ...] = ()
        if first & 0x20:
            children = tuple(parse_tlv(value, _depth + 1))
        items.append(Tlv(tag, value, children))
    return items


def find_tlv(items: list[Tlv] | tuple[Tlv, ...], tag: int) -> Tlv | None:
    """The first object with `tag`, searching depth-first."""
    for item in items:
        if item.tag == tag:
            return item
        found = find_tlv(item.children, tag)
        if found is not None:
            return found
    return None


def encode_tlv(tag: int, value: bytes) -> bytes:
    tag_bytes = tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")
    n = len(value)
    if n < 0x80:
        length = bytes((n,))
    elif n <= 0xFF:
        length = b"\x81" + bytes((n,))
    elif n <= 0xFFFF:
        length = b"\x82" + n.to_bytes(2, "big")
    else:
        raise ApduError("TLV value too long")
    return tag_bytes + length + value
