"""In-process transport: a `Transport` that hands APDUs straight to a software card (demo, tests).

It behaves like a reader: the card can be removed and re-inserted (power off/on), and a tear can be
injected (the card gets the command, then leaves before the terminal gets the answer).
"""

from __future__ import annotations

from typing import Protocol

from cardio.errors import CardRemoved, NoCard

__all__ = ["CardSide", "InProcessTransport"]


class CardSide(Protocol):
    """What a reader needs of a card: the software card implements it."""

    @property
    def atr(self) -> bytes: ...

    def process(self, apdu: bytes) -> bytes: ...

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...


class InProcessTransport:
    """A virtual reader with one software card in it."""

    __slots__ = ("_card", "_present", "_tear_on_ins", "apdus_sent")

    def __init__(self, card: CardSide) -> None:
        self._card = card
        self._present = True
        self._tear_on_ins: int | None = None
        self.apdus_sent = 0
        card.power_on()

    @property
    def card(self) -> CardSide:
        return self._card

    @property
    def present(self) -> bool:
        return self._present

    @property
    def atr(self) -> bytes:
        if not self._present:
            raise NoCard("no card in the in-process reader")
        return self._card.atr

    def remove(self) -> None:
        """The card leaves the field: it loses power and its session."""
        if self._present:
            self._card.power_off()
        self._present = False

    def insert(self, card: CardSide | None = None) -> None:
        """A card (the same one by default) enters the field and is powered."""
        if card is not None:
            self._card = card
        self._present = True
        self._tear_on_ins = None
        self._card.power_on()

    def tear_next(self, ins: int) -> None:
        """The next command with this INS reaches the card, then the card leaves before answering."""
        self._tear_on_ins = ins

    def transmit(self, apdu: bytes) -> bytes:
        if not self._present:
            raise CardRemoved("the card has left the reader")
        self.apdus_sent += 1
        response = self._card.process(bytes(apdu))
        if self._tear_on_ins is not None and len(apdu) >= 2 and apdu[1] == self._tear_on_ins:
            self._tear_on_ins = None
            self.remove()
            raise CardRemoved("the card left the field before answering")
        return response

    def close(self) -> None:
        """Nothing to release; the card stays in the reader."""
