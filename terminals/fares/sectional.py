"""Sectional fares with two taps (tap on at boarding, tap off at alighting), for buses as for metro,
and effective fare legs (fare_leg_join_rules.txt) priced tap by tap.

Pure: what a tap on a validator of `route_id` at `stop_id` (on `vehicle`) does to a card in
`state`, as a list of charges, each with the card state written atomically with its debit. No
I/O, no clock. The validator keeps the state on the card (terminals.capp); the back office
(`onecard fares price`) keeps it in memory and calls the same functions, so both charge the same.

A network is two-tap when onecard_networks.txt marks it `tap_on_off`. The card's CAPP record
carries the open leg (boarding stop, time, line, vehicle and the leg's maximum fare).

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
- Open leg, same line, same vehicle (or a gate: no vehicle), within the network's open-leg
  window (onecard_networks.txt open_leg_minutes, 4 h by default): a tap off. A tap at the
  boarding stop within the re-tap window is "already on board" (no debit); anywhere else it
  prices the leg boarding stop -> this stop with the feed's rules (transfers, caps and join
  rules as for any leg), never above the stored maximum.
- Open leg otherwise (another line, another vehicle of the same line, or too long ago): the
  unfinished leg costs its stored maximum first, then this tap is priced as usual.
- No open leg, a two-tap line: boarding, amount 0; the maximum fare from this stop is computed
  now (the dearest alighting among the stops the line serves, for this rider and state) and
  written with the open leg.
- No open leg, a one-tap line: the leg is priced at boarding, as before.
- Join rules: a leg that a join rule joins to the previous one is priced as the effective leg
  from the state before the first (charged what the effective leg costs beyond what its earlier
  legs were charged). A two-tap leg's join is decided at boarding (it depends on the networks and
  on the stops between the legs, all known then); its maximum is then the dearest such charge.
  A forgotten tap-off ends the run (where the rider got off is unknown).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from terminals.errors import NoFare
from terminals.fares.engine import (
    FareQuote,
    Leg,
    OpenLeg,
    RideState,
    Run,
    leg_network,
    price_tap,
)
from terminals.fares.feed import FareFeed
from terminals.fares.join_rules import joins

RETAP_WINDOW = timedelta(minutes=2)
VEHICLE_TAG_MAX = 0xFFFFFF  # 3 bytes on the card


def vehicle_tag(vehicle_id: str) -> int:
    """A 3-byte tag naming a vehicle on the card (0: none, a metro gate or an unknown vehicle).
    Two vehicles of one line share a tag with odds of 1 in 16.7 million."""
    if not vehicle_id:
        return 0
    return zlib.crc32(vehicle_id.encode("utf-8")) % VEHICLE_TAG_MAX + 1


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


# --------------------------------------------------------------------------- effective legs


def _bare(state: RideState) -> RideState:
    return replace(state, open_leg=None, run=None)


def may_join_after(feed: FareFeed, route_id: str, alight_stop_id: str | None) -> bool:
    """Whether some join rule could join a next leg to a leg of `route_id` ending at
    `alight_stop_id` (only then is a run kept on the card)."""
    network = feed.route_network.get(route_id, "")
    parent = feed.stop_parent.get(alight_stop_id or "", "")
    return any(
        rule.from_network_id == network
        and (not rule.from_stop_id or rule.from_stop_id in (alight_stop_id, parent))
        for rule in feed.join_rules
    )


def _last_leg(run: Run) -> Leg:
    """The run's last leg as join rules see it (its network and where it ended)."""
    return Leg(
        run.route_id, run.first_stop_id, run.first_board_at, run.alight_stop_id, run.alight_at
    )


def run_joins(feed: FareFeed, run: Run | None, leg: Leg) -> bool:
    return run is not None and joins(feed, _last_leg(run), leg)


def effective(feed: FareFeed, run: Run, leg: Leg) -> Leg:
    """The effective leg of `run` continued by `leg` (GTFS: the first leg's departure, the last
    leg's arrival, the legs' network when they all share it)."""
    network = run.network_id if run.network_id == leg_network(feed, leg) else ""
    return Leg(
        leg.route_id,
        run.first_stop_id,
        run.first_board_at,
        leg.alight_stop_id,
        leg.alight_at,
        network,
    )


def run_state(whole: FareQuote, paid_fen: int) -> RideState:
    """The state after an effective leg that cost `whole` and was charged `paid_fen` in all: the
    effective leg's state, its journey counting what was paid when that is less (a tap-off held
    at the line's maximum). Recomputed from the card's run by terminals.capp: keep it pure."""
    state = whole.state
    journey = state.journey
    if journey is not None and paid_fen < whole.fare_fen:
        journey = replace(journey, paid_fen=max(0, journey.paid_fen - whole.fare_fen + paid_fen))
        state = replace(state, journey=journey)
    return _bare(state)


def state_after_run(feed: FareFeed, card_type: str, run: Run, route_id: str) -> RideState:
    """The card state after the run's legs (what a leg that does not join continues from).
    NoFare if the feed no longer prices the run."""
    last = Leg(route_id, run.first_stop_id, run.first_board_at, run.alight_stop_id, run.alight_at)
    eff = replace(last, network_id=run.network_id)
    whole = price_tap(feed, card_type, run.before, eff)
    return run_state(whole, run.paid_fen)


def price_leg(
    feed: FareFeed, card_type: str, state: RideState, leg: Leg, *, cap_fen: int | None = None
) -> FareQuote:
    """Price one leg whose alighting is known (or a tap-on only leg), joining it to the card's run
    when a join rule says so, charging at most `cap_fen`. The state out carries the new run when
    a next leg could join this one."""
    run = state.run
    if run is not None and (run_joins(feed, run, leg) or (state.open_leg and state.open_leg.joins)):
        eff = effective(feed, run, leg)
        whole = price_tap(feed, card_type, run.before, eff)
        charge = max(0, whole.fare_fen - run.paid_fen)
        if cap_fen is not None:
            charge = min(charge, cap_fen)
        full = max(charge, whole.full_fare_fen - run.full_paid_fen)
        legs = run.legs + 1
        new_run = Run(
            run.before,
            run.first_stop_id,
            run.first_board_at,
            leg.route_id,
            eff.network_id or "",
            leg.alight_stop_id,
            leg.alight_at,
            run.paid_fen + charge,
            run.full_paid_fen + full,
            legs,
        )
        after = run_state(whole, new_run.paid_fen)
        keep = may_join_after(feed, leg.route_id, leg.alight_stop_id)
        return replace(
            whole,
            fare_fen=charge,
            full_fare_fen=full,
            fare_rule=f"{whole.fare_rule}|joined {legs} legs",
            state=replace(after, run=new_run if keep else None),
        )
    base = _bare(state)
    quote = price_tap(feed, card_type, base, leg)
    if cap_fen is not None and quote.fare_fen > cap_fen:
        quote = _with_fare(quote, cap_fen, quote.fare_rule + "|max")
    if not may_join_after(feed, leg.route_id, leg.alight_stop_id):
        return quote
    new_run = Run(
        base,
        leg.board_stop_id,
        leg.board_at,
        leg.route_id,
        leg_network(feed, leg),
        leg.alight_stop_id,
        leg.alight_at,
        quote.fare_fen,
        quote.full_fare_fen,
    )
    return replace(quote, state=replace(quote.state, run=new_run))


# --------------------------------------------------------------------------- two taps


def _alight_candidates(feed: FareFeed, route_id: str) -> list[str]:
    """One stop per distinct set of areas among the stops the line serves (the fare rules see a
    stop only through its areas)."""
    seen: dict[frozenset[str], str] = {}
    for stop in sorted(feed.stops_served(route_id)):
        seen.setdefault(feed.stop_areas.get(stop, frozenset()), stop)
    return list(seen.values())


def price_unfinished(
    feed: FareFeed,
    card_type: str,
    state: RideState,
    route_id: str,
    stop_id: str,
    at: datetime,
    *,
    joined: bool = False,
) -> FareQuote:
    """The dearest fare of a leg boarded at `stop_id` on `route_id` at `at`: the line's maximum
    for this rider and state (alighting time taken as the boarding time), over the stops the
    line serves; with `joined`, the dearest charge of the leg joined to the card's run. The
    state out has no run. NoFare if none."""
    best: FareQuote | None = None
    base = state if joined else _bare(state)
    for alight in _alight_candidates(feed, route_id):
        leg = Leg(route_id, stop_id, at, alight, at)
        try:
            quote = (
                price_leg(feed, card_type, base, leg)
                if joined
                else price_tap(feed, card_type, base, leg)
            )
        except NoFare:
            continue
        if best is None or quote.fare_fen > best.fare_fen:
            best = quote
    if best is None:
        if joined:
            raise NoFare(f"no fare for route {route_id!r} from stop {stop_id!r}")
        best = price_tap(feed, card_type, base, Leg(route_id, stop_id, at))
    return replace(best, state=_bare(best.state))


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
    feed: FareFeed,
    card_type: str,
    state: RideState,
    route_id: str,
    stop_id: str,
    now: datetime,
    vehicle: int,
) -> Step:
    run = state.run
    leg = Leg(route_id, stop_id, now)
    if run is not None and run_joins(feed, run, leg):
        # Joined: the card keeps the state before the run and the run (its last leg is
        # consumed by the join decision); the open leg continues it.
        run = replace(
            run,
            route_id=route_id,
            network_id=run.network_id if run.network_id == leg_network(feed, leg) else "",
            alight_stop_id=None,
            alight_at=None,
        )
        joined = replace(run.before, run=run, open_leg=OpenLeg(route_id, stop_id, now, 0, 0, True))
        most = price_unfinished(feed, card_type, joined, route_id, stop_id, now, joined=True)
        open_leg = OpenLeg(route_id, stop_id, now, most.fare_fen, vehicle, True)
        written = replace(joined, open_leg=open_leg)
    else:
        if run is not None:
            state = _bare(state)
        most = price_unfinished(feed, card_type, state, route_id, stop_id, now)
        open_leg = OpenLeg(route_id, stop_id, now, most.fare_fen, vehicle)
        written = replace(state, open_leg=open_leg, run=None)
    quote = _zero_quote(most.rider_category_id, f"board:max {most.fare_fen}", written)
    return Step(StepKind.BOARD, route_id, stop_id, quote)


def unfinished_step(feed: FareFeed, card_type: str, state: RideState) -> Step:
    """What the card's open leg costs when it was never tapped off: its stored maximum."""
    open_leg = state.open_leg
    if open_leg is None:
        raise NoFare("no open leg on the card")
    unfinished = price_unfinished(
        feed,
        card_type,
        state,
        open_leg.route_id,
        open_leg.board_stop_id,
        open_leg.board_at,
        joined=open_leg.joins and state.run is not None,
    )
    unfinished = _with_fare(unfinished, open_leg.max_fare_fen, f"unfinished:{unfinished.fare_rule}")
    return Step(StepKind.UNFINISHED, open_leg.route_id, open_leg.board_stop_id, unfinished)


def alight_step(
    feed: FareFeed, card_type: str, state: RideState, stop_id: str, now: datetime
) -> Step:
    """The tap-off of the card's open leg at `stop_id`: the fare of the two stops (joined to the
    run when the leg joins it), never above the maximum stored at boarding."""
    open_leg = state.open_leg
    if open_leg is None:
        raise NoFare("no open leg on the card")
    leg = Leg(open_leg.route_id, open_leg.board_stop_id, open_leg.board_at, stop_id, now)
    quote = price_leg(feed, card_type, state, leg, cap_fen=open_leg.max_fare_fen)
    return Step(StepKind.ALIGHT, open_leg.route_id, stop_id, quote)


def plan_tap(
    feed: FareFeed,
    card_type: str,
    state: RideState,
    route_id: str,
    stop_id: str,
    now: datetime,
    *,
    vehicle: str = "",
    retap_window: timedelta = RETAP_WINDOW,
) -> tuple[Step, ...]:
    """The debits of one tap, in order; raises NoFare when a leg has no fare. `vehicle` is the
    validator's vehicle ("" for a station gate)."""
    steps: list[Step] = []
    open_leg = state.open_leg
    two_tap = feed.taps_off(route_id)
    tag = vehicle_tag(vehicle)
    if open_leg is not None:
        age = now - open_leg.board_at
        window = timedelta(seconds=feed.open_leg_window_s(open_leg.route_id))
        same_vehicle = not (tag and open_leg.vehicle_tag) or tag == open_leg.vehicle_tag
        if (
            open_leg.route_id == route_id
            and two_tap
            and same_vehicle
            and timedelta(0) <= age <= window
        ):
            if stop_id == open_leg.board_stop_id and age <= retap_window:
                quote = _zero_quote(feed.rider_category_for(card_type), "on board", state)
                return (Step(StepKind.ON_BOARD, route_id, stop_id, quote),)
            return (alight_step(feed, card_type, state, stop_id, now),)
        step = unfinished_step(feed, card_type, state)
        steps.append(step)
        state = step.quote.state
    if two_tap:
        steps.append(_board(feed, card_type, state, route_id, stop_id, now, tag))
    else:
        quote = price_leg(feed, card_type, state, Leg(route_id, stop_id, now))
        steps.append(Step(StepKind.LEG, route_id, stop_id, quote))
    return tuple(steps)
