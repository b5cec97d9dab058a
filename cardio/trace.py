"""An APDU trace for debugging terminals: wraps any `Transport` and logs each exchange.

It logs the command's name, header and lengths, the answer's length, status word and time, and
NEVER a data field (data carries card numbers, MACs, TACs and keys in secure messaging).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from cardio.apdu import Transport

__all__ = ["INS_NAMES", "TraceEntry", "TracingTransport"]

LOG = logging.getLogger("cardio.apdu")
TRACE_ENTRIES_MAX = 1000  # the in-memory trace is a ring

INS_NAMES = {
    (0x00, 0xA4): "SELECT",
    (0x00, 0xB0): "READ BINARY",
    (0x00, 0xB2): "READ RECORD",
    (0x00, 0x84): "GET CHALLENGE",
    (0x00, 0xC0): "GET RESPONSE",
    (0x80, 0x5C): "GET BALANCE",
    (0x80, 0x50): "INITIALIZE",
    (0x80, 0x52): "CREDIT FOR LOAD",
    (0x80, 0x54): "DEBIT FOR PURCHASE",
    (0x80, 0xDC): "UPDATE CAPP DATA CACHE",
    (0x80, 0x5A): "GET TRANSACTION PROOF",
    (0x80, 0xCA): "GET MESSAGE",
    (0x80, 0x70): "INIT SAM FOR PURCHASE",
    (0x80, 0x72): "CREDIT SAM FOR PURCHASE",
}


@dataclass(frozen=True, slots=True)
class TraceEntry:
    name: str
    header: bytes  # CLA INS P1 P2
    command_len: int
    response_len: int  # data bytes, without SW
    sw: int | None  # None: the transport failed
    elapsed_us: float


class TracingTransport:
    """A `Transport` that records and logs (at DEBUG) every exchange of the one it wraps."""

    __slots__ = ("entries", "inner")

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.entries: list[TraceEntry] = []

    def transmit(self, apdu: bytes) -> bytes:
        header = bytes(apdu[:4])
        name = INS_NAMES.get((header[0] & 0xFC, header[1]) if len(header) >= 2 else (0, 0), "?")
        start = time.perf_counter()
        sw: int | None = None
        response_len = 0
        try:
            response = self.inner.transmit(apdu)
            if len(response) >= 2:
                sw = int.from_bytes(response[-2:], "big")
                response_len = len(response) - 2
            return response
        finally:
            entry = TraceEntry(
                name, header, len(apdu), response_len, sw, (time.perf_counter() - start) * 1e6
            )
            self.entries.append(entry)
            del self.entries[:-TRACE_ENTRIES_MAX]
            LOG.debug(
                "%s %s (%d bytes) -> %s, %d bytes, %.0f us",
                name,
                header.hex().upper(),
                len(apdu),
                "failed" if sw is None else f"SW {sw:04X}",
                response_len,
                entry.elapsed_us,
            )

    def close(self) -> None:
        self.inner.close()
