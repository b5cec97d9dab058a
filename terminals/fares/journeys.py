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
from dataclasses import dataclass, replace

from terminals.fares.engine import (
    EMPTY_STATE,
    FareQuote,
    Leg,
    RideState,
    leg_network,
    price_tap,
)
from terminals.fares.feed import FareFeed


@dataclass(frozen=True, slots=True)
class CardTap:
    """One line of a day of taps: which card, of which type, rode what, when."""

    card: str
    card_type: str
    leg: Leg


def _stop_matches(feed: FareFeed, wanted: str, stop_id: str | None) -> bool:
    """A join rule's stop names the stop itself or its parent station."""
    return not wanted or (
        stop_id is not None and wanted in (stop_id, feed.stop_parent.get(stop_id, ""))
    )


def joins(feed: FareFeed, previous: Leg, leg: Leg) -> bool:
    """Whether fare_leg_join_rules.txt makes `previous` and `leg` one effective fare leg."""
    before, after = leg_network(feed, previous), leg_network(feed, leg)
    return any(
        rule.from_network_id == before
        and rule.to_network_id == after
        and _stop_matches(feed, rule.from_stop_id, previous.alight_stop_id)
        and _stop_matches(feed, rule.to_stop_id, leg.board_stop_id)
        for rule in feed.join_rules
    )


def effective_leg(feed: FareFeed, legs: Sequence[Leg]) -> Leg:
    """Joined legs as one: the first leg's departure, the last leg's arrival, and the legs'
    network when they all share it (GTFS: "each leg must have the same network_id")."""
    networks = {leg_network(feed, leg) for leg in legs}
    first, last = legs[0], legs[-1]
    return Leg(
        first.route_id,
        first.board_stop_id,
        first.board_at,
        last.alight_stop_id,
        last.alight_at,
        networks.pop() if len(networks) == 1 else "",
    )


@dataclass(slots=True)
class _Run:
    """Consecutive legs joined so far, the state before them, and what they were charged."""

    legs: list[Leg]
    before: RideState
    paid_fen: int
    full_paid_fen: int


class CardJourney:
    """One card's legs priced in order, joining them where fare_leg_join_rules.txt says so."""

    def __init__(self, feed: FareFeed, card_type: str, state: RideState = EMPTY_STATE) -> None:
        self.feed, self.card_type, self.state = feed, card_type, state
        self._run: _Run | None = None

    def price(self, leg: Leg) -> FareQuote:
        """The quote of the next leg; the state moves on. NoFare leaves everything as it was."""
        run = self._run
        if run is not None and joins(self.feed, run.legs[-1], leg):
            legs = [*run.legs, leg]
            whole = price_tap(self.feed, self.card_type, run.before, effective_leg(self.feed, legs))
            charge = max(0, whole.fare_fen - run.paid_fen)
            quote = replace(
                whole,
                fare_fen=charge,
                full_fare_fen=max(charge, whole.full_fare_fen - run.full_paid_fen),
                fare_rule=f"{whole.fare_rule}|joined {len(legs)} legs",
            )
            self._run = _Run(
                legs, run.before, run.paid_fen + charge, run.full_paid_fen + quote.full_fare_fen
            )
        else:
            quote = price_tap(self.feed, self.card_type, self.state, leg)
            self._run = _Run([leg], self.state, quote.fare_fen, quote.full_fare_fen)
        self.state = quote.state
        return quote

    def record(self, quote: FareQuote) -> None:
        """A quote priced elsewhere (a forgotten tap-off's maximum) ends any effective leg."""
        self.state, self._run = quote.state, None


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
