"""The vpcd bridge: a card (the software card) as a vpcd client, so a real pcscd sees it in a reader.

Protocol (vsmartcard's vpcd, TOOLCHAIN.md): the card connects to the reader's TCP port; every message
both ways is a 2-byte big-endian length then the payload. A 1-byte message from vpcd is control:
0 power off, 1 power on, 2 reset (no reply), 4 get ATR (reply: the ATR); longer ones are C-APDUs
(reply: the R-APDU). TCP_NODELAY is set and TCP_QUICKACK re-armed after EVERY recv: Debian's vpcd
writes length and payload in two sends, and with delayed ACKs each APDU would stall ~44 ms.

Closing the connection is how the card leaves the reader (`pull()`), reconnecting how it comes back.
It never logs APDU payloads.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from cardio.errors import TransportError
from cardio.inproc import CardSide

__all__ = [
    "VPCD_HOST_DEFAULT",
    "VPCD_PORT_DEFAULT",
    "VpcdBridge",
    "parse_host_port",
    "serve_in_thread",
]

VPCD_HOST_DEFAULT = "127.0.0.1"
VPCD_PORT_DEFAULT = 35963  # "Virtual PCD 00 00"
CONNECT_TIMEOUT_S = 5.0

CTRL_POWER_OFF = 0
CTRL_POWER_ON = 1
CTRL_RESET = 2
CTRL_ATR = 4

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def parse_host_port(text: str) -> tuple[str, int]:
    """'HOST:PORT' (or ':PORT', or 'PORT') -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = VPCD_HOST_DEFAULT, text
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"not HOST:PORT: {text!r}") from None
    if not 1 <= number <= 65535:
        raise ValueError(f"port out of range: {number}")
    return host or VPCD_HOST_DEFAULT, number


class VpcdBridge:
    """Serves one card to vpcd over one TCP connection.

    `on_change` is called after an APDU that changed the card's persistent state and BEFORE the
    answer is sent (so a card pulled right after has its state saved), with the card's new
    `state_version` if it has one.
    """

    def __init__(
        self,
        card: CardSide,
        host: str = VPCD_HOST_DEFAULT,
        port: int = VPCD_PORT_DEFAULT,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.card = card
        self.host = host
        self.port = port
        self.on_change = on_change
        self.apdus_served = 0
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    # --- connection ----------------------------------------------------------------------------

    def connect(self) -> None:
        """Insert the card: connect to vpcd's reader port."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT_S)
        except OSError as error:
            raise TransportError(
                f"cannot reach vpcd at {self.host}:{self.port} ({error.strerror or error}): "
                "is pcscd running with the vpcd driver? (bash scripts/pcsc.sh start)"
            ) from None
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._quickack(sock)
        with self._lock:
            self._sock = sock
        self._stopping.clear()

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def pull(self) -> None:
        """Remove the card from the reader: close the connection (serve() then returns)."""
        self._stopping.set()
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            # Already closed by the peer is fine: the card is out either way.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.card.power_off()

    stop = pull

    @staticmethod
    def _quickack(sock: socket.socket) -> None:
        if _QUICKACK is not None:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    # --- serving -------------------------------------------------------------------------------

    def serve(self) -> None:
        """Answer vpcd until the connection closes or `pull()` is called."""
        sock = self._sock
        if sock is None:
            raise TransportError("not connected: call connect() first")
        try:
            while not self._stopping.is_set():
                message = self._recv_message(sock)
                if message is None:
                    break
                reply = self._handle(message)
                if reply is not None:
                    sock.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:
            if not self._stopping.is_set():
                raise
        finally:
            with self._lock:
                if self._sock is sock:
                    self._sock = None
            sock.close()

    def _recv_exact(self, sock: socket.socket, length: int) -> bytes | None:
        chunks = bytearray()
        while len(chunks) < length:
            chunk = sock.recv(length - len(chunks))
            self._quickack(sock)  # the kernel clears QUICKACK: re-arm after every recv
            if not chunk:
                return None
            chunks += chunk
        return bytes(chunks)

    def _recv_message(self, sock: socket.socket) -> bytes | None:
        header = self._recv_exact(sock, 2)
        if header is None:
            return None
        # A 2-byte length bounds every message to 65,535 bytes: no other limit is needed.
        return self._recv_exact(sock, int.from_bytes(header, "big"))

    def _handle(self, message: bytes) -> bytes | None:
        if len(message) == 1:
            control = message[0]
            if control == CTRL_ATR:
                return self.card.atr
            if control == CTRL_POWER_OFF:
                self.card.power_off()
            elif control in (CTRL_POWER_ON, CTRL_RESET):
                self.card.power_on()
            return None
        version_before = getattr(self.card, "state_version", None)
        response = self.card.process(message)
        self.apdus_served += 1
        if (
            self.on_change is not None
            and getattr(self.card, "state_version", None) != version_before
        ):
            self.on_change()
        return response


def serve_in_thread(bridge: VpcdBridge) -> threading.Thread:
    """Connect and serve on a daemon thread (tests, embedded use); `bridge.pull()` ends it."""
    bridge.connect()
    thread = threading.Thread(target=bridge.serve, name=f"vpcd-card-{bridge.port}", daemon=True)
    thread.start()
    return thread
