"""The serving loop of a terminal on a PC/SC reader: wait for a card, serve it, wait for it to go.

Every wait is cut into short slices that check a stop flag, so SIGINT or SIGTERM stops the loop
within a slice (pyscard's card wait swallows a KeyboardInterrupt and times out instead). A tap
in progress is never interrupted: the flag is read between cards, not in the middle of a debit.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cardio.apdu import Transport
from cardio.errors import CardioError, NoCard, ReaderNotFound, TransportError
from cardio.pcsc import PcscTransport, wait_for_card, wait_for_removal

WAIT_SLICE_S = 0.3  # how long a stop request may wait: one slice of a PC/SC wait
REMOVAL_WAIT_S_MAX = 60.0  # a card left on the reader this long is served again
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """A stop flag set by a signal (or by anyone); remembers which signal asked."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None
        self._interruptible = False

    def set(self, signum: int | None = None) -> None:
        if signum is not None and self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Within this block a signal also raises KeyboardInterrupt: for a wait on a person
        (a prompt) that a flag alone would not end, where nothing has been debited yet."""
        if self.is_set():
            raise KeyboardInterrupt
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False

    def on_signal(self, signum: int) -> None:
        self.set(signum)
        if self._interruptible:
            raise KeyboardInterrupt


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[StopRequest]:
    """SIGINT and SIGTERM set `stop` instead of raising; the old handlers come back after."""

    def handler(signum: int, _frame: object) -> None:
        stop.on_signal(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def wait_for_card_or_stop(reader: str, stop: StopRequest) -> bool:
    """True when a card is in `reader`, False when a stop was asked first. Raises CardioError
    when the reader is gone or pcscd fails."""
    while not stop.is_set():
        try:
            wait_for_card(reader, WAIT_SLICE_S)
        except NoCard:
            continue
        return not stop.is_set()
    return False


def wait_for_removal_or_stop(reader: str, stop: StopRequest) -> None:
    """Return when the card left, a stop was asked, or REMOVAL_WAIT_S_MAX passed."""
    deadline = time.monotonic() + REMOVAL_WAIT_S_MAX
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            wait_for_removal(reader, WAIT_SLICE_S)
        except ReaderNotFound:
            raise
        except TransportError:
            continue  # still there after this slice
        return


def serve_reader(
    reader: str,
    serve_card: Callable[[Transport], str],
    stop: StopRequest,
    *,
    once: bool = False,
    on_line: Callable[[str], None] = print,
) -> int:
    """Serve every card put on `reader` until `stop` is set; returns how many were served.

    `serve_card` runs one presentation (a tap, a clinic charge, a load) and returns the line to
    show. A card that cannot be opened (pulled at once) is skipped. CardioError from the reader
    itself (gone, pcscd down) ends the loop by raising.
    """
    served = 0
    while wait_for_card_or_stop(reader, stop):
        try:
            transport = PcscTransport.open(reader)
        except ReaderNotFound:
            raise
        except TransportError:
            continue  # the card left at once
        try:
            line = serve_card(transport)
        finally:
            transport.close()
        served += 1
        on_line(line)
        if once:
            break
        try:
            wait_for_removal_or_stop(reader, stop)
        except ReaderNotFound:
            raise
        except CardioError:
            continue
    return served
