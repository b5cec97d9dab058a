"""The card's life as a pure transition table: which action may move a card from which status.

Pure: no I/O. The registry service asks it before acting; the tests hold the service to it.
Every status except `active` keeps the card on the deny list.
"""

from __future__ import annotations

import enum

from clearing.registry.models import CardStatus


class CardAction(enum.StrEnum):
    REPORT_LOST = "report_lost"
    BLOCK = "block"
    UNBLOCK = "unblock"
    REPLACE = "replace"
    REFUND = "refund"


# action -> (statuses it may start from, the status it leads to)
TRANSITIONS: dict[CardAction, tuple[frozenset[CardStatus], CardStatus]] = {
    CardAction.REPORT_LOST: (frozenset({CardStatus.ACTIVE, CardStatus.BLOCKED}), CardStatus.LOST),
    CardAction.BLOCK: (frozenset({CardStatus.ACTIVE, CardStatus.LOST}), CardStatus.BLOCKED),
    # a blocked card cleared, or a lost card found again
    CardAction.UNBLOCK: (frozenset({CardStatus.BLOCKED, CardStatus.LOST}), CardStatus.ACTIVE),
    CardAction.REPLACE: (
        frozenset({CardStatus.ACTIVE, CardStatus.LOST, CardStatus.BLOCKED}),
        CardStatus.REPLACED,
    ),
    # refund on return: the card is in hand, so it is neither lost nor replaced
    CardAction.REFUND: (frozenset({CardStatus.ACTIVE, CardStatus.BLOCKED}), CardStatus.REFUNDED),
}

# Repeating these on a card already there is accepted and changes nothing.
IDEMPOTENT: dict[CardAction, CardStatus] = {
    CardAction.REPORT_LOST: CardStatus.LOST,
    CardAction.BLOCK: CardStatus.BLOCKED,
}


def next_status(status: CardStatus, action: CardAction) -> CardStatus | None:
    """The status after `action`, or None if the action is refused in `status`."""
    if IDEMPOTENT.get(action) is status:
        return status
    allowed, target = TRANSITIONS[action]
    return target if status in allowed else None


def allowed_from(action: CardAction) -> frozenset[CardStatus]:
    return TRANSITIONS[action][0]


def denied(status: CardStatus) -> bool:
    """Terminals must refuse a card in this status."""
    return status is not CardStatus.ACTIVE
