"""Sectional fares with two taps (tap on at boarding, tap off at alighting), for buses as for metro.

Pure: what a tap on a validator of `route_id` at `stop_id` does to a card in `state`, as a list
of charges, each with the card state written atomically with its debit. No I/O, no clock.

A network is two-tap when onecard_networks.txt marks it `tap_on_off`. The card's CAPP record
carries the open leg (boarding stop, time, line and the leg's maximum fare, terminals.capp).

Why 0 at boarding and not a deposit of the maximum fare: the purse can only be credited by a
load (CREDIT FOR LOAD needs a MAC2 from the issuer's load key, online); an offline validator
holds purchase keys only. A deposit taken at boarding could therefore never be given back at the
alighting door: every rider would pay the maximum and wait for a refund at a desk. So boarding
is an amount-0 CAPP purchase (it writes the record, counted and TAC'd like any purchase), the
alighting debits the fare of the two stops, and a rider who never taps off pays the maximum
fare stored at boarding when the card is next presented to any validator (a debit of its own,
recorded against the line and stop of the unfinished leg, so clearing pays that line's operator).
The only exposure is a card never presented again after a forgotten tap-off: one leg's maximum.

Rules:
- Open leg, same line, within OPEN_LEG_MAX: a tap off. A tap at the boarding stop within the
  re-tap window is "already on board" (no debit); anywhere else it prices the leg boarding stop
  -> this stop with the feed's rules (transfers and caps as for any leg), never above the stored
  maximum.
- Open leg otherwise (another line, or too long ago): the unfinished leg costs its stored maximum
  first, then this tap is priced as usual.
- No open leg, a two-tap line: boarding, amount 0; the maximum fare from this stop is computed
  now (the dearest alighting for this rider and state) and written with the open leg.
- No open leg, a one-tap line: the leg is priced at boarding, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from terminals.errors import NoFare
from terminals.fares.engine import FareQuote, Leg, OpenLeg, RideState, price_tap
from terminals.fares.feed import FareFeed

OPEN_LEG_MAX = timedelta(hours=4)  # an open leg older than this is unfinished, whatever the line
RETAP_WINDOW = timedelta(minutes=2)


class StepKind(StrEnum):
    UNFINISHED = "unfinished"  # the maximum fare of a leg never tapped off
    BOARD = "board"  # tap on of a two-tap line: amount 0, writes the open leg
    ALIGHT = "alight"  # tap off: the fare between the two stops
    LEG = "leg"  # a one-tap line: the fare at boarding
    ON_BOARD = "on_board"  # a second tap at the boarding stop: nothing to do


@dataclass(frozen=True, slots=True)
class Step:
    """One debit of a tap (ON_BOARD: none), and the card state written with it."""

    kind: StepKind
    route_id: str  # whose operator is paid: the unfinished leg's line for UNFINISHED
    stop_id: str
    quote: FareQuote  # quote.fare_fen is the amount debited, quote.state the state written

    @property
    def fare_fen(self) -> int:
        return self.quote.fare_fen


def _alight_candidates(feed: FareFeed) -> list[str]:
    """One stop per distinct set of areas (the fare rules see a stop only through its areas)."""
    seen: dict[frozenset[str], str] = {}
    for stop in sorted(feed.stops | set(feed.stop_areas)):
        seen.setdefault(feed.stop_areas.get(stop, frozenset()), stop)
    return list(seen.values())


def price_unfinished(
    feed: FareFeed, card_type: str, state: RideState, route_id: str, stop_id: str, at: datetime
) -> FareQuote:
    """The dearest fare of a leg boarded at `stop_id` on `route_id` at `at`: the line's maximum
    for this rider and state (alighting time taken as the boarding time). NoFare if none."""
    best: FareQuote | None = None
    base = replace(state, open_leg=None)
    for alight in _alight_candidates(feed):
        try:
            quote = price_tap(feed, card_type, base, Leg(route_id, stop_id, at, alight, at))
        except NoFare:
            continue
        if best is None or quote.fare_fen > best.fare_fen:
            best = quote
    if best is None:
        return price_tap(feed, card_type, base, Leg(route_id, stop_id, at))
    return best


def _with_fare(quote: FareQuote, fare_fen: int, rule: str) -> FareQuote:
    """`quote` charging `fare_fen` instead (its journey's paid amount follows)."""
    journey = quote.state.journey
    if journey is not None:
        journey = replace(journey, paid_fen=max(0, journey.paid_fen - quote.fare_fen + fare_fen))
    return replace(
        quote,
        fare_fen=fare_fen,
        full_fare_fen=max(quote.full_fare_fen, fare_fen),
        fare_rule=rule,
        state=replace(quote.state, journey=journey),
    )


def _zero_quote(rider_category_id: str, rule: str, state: RideState) -> FareQuote:
    return FareQuote(
        fare_fen=0,
        full_fare_fen=0,
        rider_category_id=rider_category_id,
        fare_rule=rule,
        fare_product_id="",
        transfer_rule=None,
        cap_savings_fen=0,
        caps=(),
        state=state,
    )


def _board(
    feed: FareFeed, card_type: str, state: RideState, route_id: str, stop_id: str, now: datetime
) -> Step:
    most = price_unfinished(feed, card_type, state, route_id, stop_id, now)
    open_leg = OpenLeg(route_id, stop_id, now, most.fare_fen)
    quote = _zero_quote(
        most.rider_category_id, f"board:max {most.fare_fen}", replace(state, open_leg=open_leg)
    )
    return Step(StepKind.BOARD, route_id, stop_id, quote)


def plan_tap(
    feed: FareFeed,
    card_type: str,
    state: RideState,
    route_id: str,
    stop_id: str,
    now: datetime,
    *,
    retap_window: timedelta = RETAP_WINDOW,
) -> tuple[Step, ...]:
    """The debits of one tap, in order; raises NoFare when a leg has no fare."""
    steps: list[Step] = []
    open_leg = state.open_leg
    two_tap = feed.taps_off(route_id)
    if open_leg is not None:
        age = now - open_leg.board_at
        if open_leg.route_id == route_id and two_tap and timedelta(0) <= age <= OPEN_LEG_MAX:
            if stop_id == open_leg.board_stop_id and age <= retap_window:
                quote = _zero_quote(feed.rider_category_for(card_type), "on board", state)
                return (Step(StepKind.ON_BOARD, route_id, stop_id, quote),)
            leg = Leg(route_id, open_leg.board_stop_id, open_leg.board_at, stop_id, now)
            quote = price_tap(feed, card_type, replace(state, open_leg=None), leg)
            if quote.fare_fen > open_leg.max_fare_fen:
                quote = _with_fare(quote, open_leg.max_fare_fen, quote.fare_rule + "|max")
            return (Step(StepKind.ALIGHT, route_id, stop_id, quote),)
        unfinished = price_unfinished(
            feed, card_type, state, open_leg.route_id, open_leg.board_stop_id, open_leg.board_at
        )
        unfinished = _with_fare(
            unfinished,
            open_leg.max_fare_fen,
            f"unfinished:{unfinished.fare_rule}",
        )
        steps.append(
            Step(StepKind.UNFINISHED, open_leg.route_id, open_leg.board_stop_id, unfinished)
        )
        state = unfinished.state
    if two_tap:
        steps.append(_board(feed, card_type, state, route_id, stop_id, now))
    else:
        quote = price_tap(feed, card_type, state, Leg(route_id, stop_id, now))
        steps.append(Step(StepKind.LEG, route_id, stop_id, quote))
    return tuple(steps)
