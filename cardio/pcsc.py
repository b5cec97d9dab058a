"""PC/SC transport through pyscard: any reader pcscd knows. The ONLY module that imports `smartcard`.

Every pyscard/PC/SC failure leaves here as a `cardio.errors.TransportError` subclass (`CardRemoved`,
`NoCard`, `ReaderNotFound`, `ReaderUnavailable`). APDU payloads are never logged.

- `list_readers() -> list[str]`, `readers_with_card() -> {name: card present}`
- `find_card(timeout_s, readers=None) -> str`: the first reader holding a card (waiting if asked)
- `wait_for_card(reader, timeout_s) -> None` (CardRequest.waitforcard; NoCard on time-out)
- `wait_for_removal(reader, timeout_s) -> None` (until pcscd sees the reader empty)
- `PcscTransport.open(reader, share=True, timeout_s=0)`: connect (SCARD_LEAVE_CARD on release when
  shared, so other handles on the same card are not reset), `.transmit(apdu) -> bytes`, `.atr`, `.reset()` (warm reset), `.close()`.
"""

from __future__ import annotations

import time

from smartcard import scard  # type: ignore[import-untyped]
from smartcard.CardRequest import CardRequest  # type: ignore[import-untyped]
from smartcard.Exceptions import (  # type: ignore[import-untyped]
    CardRequestTimeoutException,
    SmartcardException,
)

from cardio.errors import CardRemoved, NoCard, ReaderNotFound, ReaderUnavailable, TransportError

__all__ = [
    "PCSC_TIMEOUT_S_MAX",
    "PcscTransport",
    "error_for_hresult",
    "find_card",
    "list_readers",
    "readers_with_card",
    "wait_for_card",
    "wait_for_removal",
]

PCSC_TIMEOUT_S_MAX = 600.0


def _u32(code: int) -> int:
    return code & 0xFFFFFFFF


_REMOVED = {
    _u32(scard.SCARD_W_REMOVED_CARD),
    _u32(scard.SCARD_E_NOT_TRANSACTED),
    _u32(scard.SCARD_W_RESET_CARD),
    _u32(scard.SCARD_W_UNPOWERED_CARD),
    _u32(scard.SCARD_W_UNRESPONSIVE_CARD),
    _u32(scard.SCARD_E_COMM_DATA_LOST),
    _u32(scard.SCARD_E_INVALID_HANDLE),
}
_NO_CARD = {_u32(scard.SCARD_E_NO_SMARTCARD), _u32(scard.SCARD_E_TIMEOUT)}
_NO_READER = {_u32(scard.SCARD_E_UNKNOWN_READER), _u32(scard.SCARD_E_NO_READERS_AVAILABLE)}
_NO_SERVICE = {
    _u32(scard.SCARD_E_NO_SERVICE),
    _u32(scard.SCARD_E_SERVICE_STOPPED),
    _u32(scard.SCARD_E_READER_UNAVAILABLE),
}


def error_for_hresult(hresult: int, doing: str) -> TransportError:
    """The cardio error for a PC/SC return code."""
    code = _u32(hresult)
    text = f"{doing}: {scard.SCardGetErrorMessage(hresult)} (0x{code:08X})"
    if code in _REMOVED:
        return CardRemoved(text)
    if code in _NO_CARD:
        return NoCard(text)
    if code in _NO_READER:
        return ReaderNotFound(text)
    if code in _NO_SERVICE:
        return ReaderUnavailable(text)
    return TransportError(text)


def _context() -> int:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise ReaderUnavailable(
            f"cannot reach pcscd (0x{_u32(hresult):08X}): start it with `bash scripts/pcsc.sh start`"
        )
    return context


def list_readers() -> list[str]:
    """Names of the readers pcscd knows (empty if none)."""
    context = _context()
    try:
        hresult, readers = scard.SCardListReaders(context, [])
        if _u32(hresult) == _u32(scard.SCARD_E_NO_READERS_AVAILABLE):
            return []
        if hresult != scard.SCARD_S_SUCCESS:
            raise error_for_hresult(hresult, "listing readers")
        return list(readers)
    finally:
        scard.SCardReleaseContext(context)


def readers_with_card() -> dict[str, bool]:
    """Every reader pcscd knows and whether a card is in it right now (no waiting)."""
    names = list_readers()
    if not names:
        return {}
    context = _context()
    try:
        states = [(name, scard.SCARD_STATE_UNAWARE) for name in names]
        hresult, states = scard.SCardGetStatusChange(context, 0, states)
        if hresult not in (scard.SCARD_S_SUCCESS, scard.SCARD_E_TIMEOUT):
            raise error_for_hresult(hresult, "reading the readers' state")
        return {name: bool(state & scard.SCARD_STATE_PRESENT) for name, state, _atr in states}
    finally:
        scard.SCardReleaseContext(context)


def find_card(timeout_s: float = 0.0, readers: list[str] | None = None) -> str:
    """The first reader (in pcscd's order, among `readers` if given) holding a card; waits up to
    `timeout_s` for one to be put in (CardRequest). NoCard if none, ReaderNotFound if there is no
    such reader."""
    if not 0 <= timeout_s <= PCSC_TIMEOUT_S_MAX:
        raise ValueError(f"timeout_s must be within 0..{PCSC_TIMEOUT_S_MAX}")
    present = readers_with_card()
    if readers is not None:
        present = {name: has_card for name, has_card in present.items() if name in readers}
    if not present:
        raise ReaderNotFound("no such reader" if readers is not None else "pcscd knows no reader")
    for name, has_card in present.items():
        if has_card:
            return name
    if timeout_s > 0:
        try:
            service = CardRequest(readers=list(present), timeout=timeout_s).waitforcard()
        except CardRequestTimeoutException:
            raise NoCard(f"no card in any reader after {timeout_s} s") from None
        except SmartcardException as error:
            raise error_for_hresult(getattr(error, "hresult", -1), "waiting for a card") from None
        return str(service.connection.getReader())
    raise NoCard("no card in any reader")


def wait_for_card(reader: str, timeout_s: float = 5.0) -> None:
    """Block until a card is present in `reader` (never a fixed sleep); NoCard after `timeout_s`."""
    if not 0 <= timeout_s <= PCSC_TIMEOUT_S_MAX:
        raise ValueError(f"timeout_s must be within 0..{PCSC_TIMEOUT_S_MAX}")
    if reader not in list_readers():
        raise ReaderNotFound(f"no reader named {reader!r}")
    try:
        request = CardRequest(readers=[reader], timeout=timeout_s)
        request.waitforcard()
    except CardRequestTimeoutException:
        raise NoCard(f"no card in {reader!r} after {timeout_s} s") from None
    except SmartcardException as error:
        raise error_for_hresult(
            getattr(error, "hresult", -1), f"waiting for a card in {reader!r}"
        ) from None


def wait_for_removal(reader: str, timeout_s: float = 5.0) -> None:
    """Block until pcscd sees no card in `reader` (SCardGetStatusChange, no polling).

    Raises TransportError if a card is still there after `timeout_s`.
    """
    if not 0 <= timeout_s <= PCSC_TIMEOUT_S_MAX:
        raise ValueError(f"timeout_s must be within 0..{PCSC_TIMEOUT_S_MAX}")
    context = _context()
    try:
        states = [(reader, scard.SCARD_STATE_UNAWARE)]
        deadline = time.monotonic() + timeout_s
        while True:
            left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            hresult, states = scard.SCardGetStatusChange(context, left_ms, states)
            if _u32(hresult) == _u32(scard.SCARD_E_TIMEOUT):
                raise TransportError(f"a card is still in {reader!r} after {timeout_s} s")
            if hresult != scard.SCARD_S_SUCCESS:
                raise error_for_hresult(hresult, f"watching {reader!r}")
            _name, event_state, _atr = states[0]
            if event_state & scard.SCARD_STATE_UNKNOWN:
                raise ReaderNotFound(f"no reader named {reader!r}")
            if event_state & scard.SCARD_STATE_EMPTY:
                return
            states = [(reader, event_state & ~scard.SCARD_STATE_CHANGED)]
    finally:
        scard.SCardReleaseContext(context)


class PcscTransport:
    """One connection to the card in one reader (T=0 or T=1, shared mode)."""

    __slots__ = ("_atr", "_context", "_disposition", "_handle", "_protocol", "reader")

    def __init__(
        self, reader: str, context: int, handle: int, protocol: int, disposition: int
    ) -> None:
        self.reader = reader
        self._context: int | None = context
        self._handle: int | None = handle
        self._protocol = protocol
        self._disposition = disposition
        self._atr: bytes | None = None

    @classmethod
    def open(cls, reader: str, share: bool = True, timeout_s: float = 0.0) -> PcscTransport:
        """Connect to the card in `reader`, waiting up to `timeout_s` for one to appear.

        share=True: other processes may hold the same card and release leaves it powered
        (SCARD_LEAVE_CARD); share=False: exclusive, and the card is powered off on close.
        """
        if timeout_s > 0:
            wait_for_card(reader, timeout_s)
        context = _context()
        mode = scard.SCARD_SHARE_SHARED if share else scard.SCARD_SHARE_EXCLUSIVE
        hresult, handle, protocol = scard.SCardConnect(
            context, reader, mode, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        )
        if hresult != scard.SCARD_S_SUCCESS:
            scard.SCardReleaseContext(context)
            raise error_for_hresult(hresult, f"connecting to the card in {reader!r}")
        disposition = scard.SCARD_LEAVE_CARD if share else scard.SCARD_UNPOWER_CARD
        return cls(reader, context, handle, protocol, disposition)

    @property
    def atr(self) -> bytes:
        if self._atr is None:
            hresult, _reader, _state, _protocol, atr = scard.SCardStatus(self._handle)
            if hresult != scard.SCARD_S_SUCCESS:
                raise error_for_hresult(hresult, "reading the ATR")
            self._atr = bytes(atr)
        return self._atr

    def transmit(self, apdu: bytes) -> bytes:
        if self._handle is None:
            raise CardRemoved("the connection is closed")
        hresult, response = scard.SCardTransmit(self._handle, self._protocol, list(apdu))
        if hresult != scard.SCARD_S_SUCCESS:
            raise error_for_hresult(hresult, "transmitting to the card")
        if len(response) < 2:
            # Some drivers (vpcd among them) report success with no bytes when the card vanished
            # mid-command: no status word means no answer.
            raise CardRemoved("the card left during the command (no status word came back)")
        return bytes(response)

    def reset(self) -> None:
        """Warm-reset the card (SCardReconnect with SCARD_RESET_CARD): it loses its session, as
        when it leaves the field and comes back, and this handle stays usable."""
        if self._handle is None:
            raise CardRemoved("the connection is closed")
        mode = (
            scard.SCARD_SHARE_SHARED
            if self._disposition == scard.SCARD_LEAVE_CARD
            else scard.SCARD_SHARE_EXCLUSIVE
        )
        hresult, protocol = scard.SCardReconnect(
            self._handle,
            mode,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
            scard.SCARD_RESET_CARD,
        )
        if hresult != scard.SCARD_S_SUCCESS:
            raise error_for_hresult(hresult, "resetting the card")
        self._protocol = protocol

    def close(self) -> None:
        if self._handle is not None:
            scard.SCardDisconnect(self._handle, self._disposition)
            self._handle = None
        if self._context is not None:
            scard.SCardReleaseContext(self._context)
            self._context = None

    def __enter__(self) -> PcscTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
