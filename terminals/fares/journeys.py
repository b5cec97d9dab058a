"""Journeys of legs: one card's legs priced in order, consecutive legs joined into one effective
fare leg where fare_leg_join_rules.txt says so (GTFS-Fares v2).

An effective fare leg matches fare_leg_rules.txt with its first leg's departure (area and
timeframe), its last leg's arrival, and its legs' network when they all share one. Priced tap by
tap, each leg of an effective leg is charged what the effective leg costs beyond what its earlier
legs were charged (from the state before the first one, so transfers and caps see one leg).
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from terminals.fares.engine import EMPTY_STATE, FareQuote, Leg, RideState
from terminals.fares.feed import FareFeed
from terminals.fares.join_rules import joins
from terminals.fares.sectional import price_leg

__all__ = ["CardJourney", "CardTap", "joins", "price_card_legs", "price_taps"]


@dataclass(frozen=True, slots=True)
class CardTap:
    """One line of a day of taps: which card, of which type, rode what, when."""

    card: str
    card_type: str
    leg: Leg


class CardJourney:
    """One card's legs priced in order, joining them where fare_leg_join_rules.txt says so (the
    validators' own rules, terminals.fares.sectional.price_leg, with the state in memory)."""

    def __init__(self, feed: FareFeed, card_type: str, state: RideState = EMPTY_STATE) -> None:
        self.feed, self.card_type, self.state = feed, card_type, state

    def price(self, leg: Leg) -> FareQuote:
        """The quote of the next leg; the state moves on. NoFare leaves everything as it was."""
        quote = price_leg(self.feed, self.card_type, self.state, leg)
        self.state = quote.state
        return quote


def price_card_legs(
    feed: FareFeed, card_type: str, state: RideState, legs: Sequence[Leg]
) -> list[FareQuote]:
    """Price one card's legs in order; legs joined by fare_leg_join_rules.txt are priced as one
    effective leg, each tap charged what the effective leg costs beyond what it already paid."""
    journey = CardJourney(feed, card_type, state)
    return [journey.price(leg) for leg in legs]


def price_taps(
    feed: FareFeed, taps: Sequence[CardTap], states: dict[str, RideState] | None = None
) -> list[FareQuote]:
    """Price taps in chronological order per card (joining legs as fare_leg_join_rules.txt
    says); quotes come back in the input order."""
    states = dict(states or {})
    quotes: list[FareQuote | None] = [None] * len(taps)
    order = sorted(range(len(taps)), key=lambda i: (taps[i].card, taps[i].leg.board_at, i))
    by_card: dict[str, list[int]] = {}
    for index in order:
        by_card.setdefault(taps[index].card, []).append(index)
    for card, indexes in by_card.items():
        legs = [taps[i].leg for i in indexes]
        card_type = taps[indexes[0]].card_type
        priced = price_card_legs(feed, card_type, states.get(card, EMPTY_STATE), legs)
        for index, quote in zip(indexes, priced, strict=True):
            quotes[index] = quote
    return [q for q in quotes if q is not None]
