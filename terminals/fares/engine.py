"""The fare engine: pure functions that price one leg from a GTFS-Fares v2 feed and the card's state.

No I/O, no clock, no randomness: the same feed, state and leg always give the same quote.
Transfer state and cap progress come in and go out as `RideState` (the card carries it).

Semantics (GTFS-Fares v2, https://gtfs.org/documentation/schedule/reference/):
- fare_leg_rules without a `rule_priority` column: per field, a leg value that appears in the
  file must match exactly; otherwise only rules with the field empty ("all others") match.
  With the column: an empty field matches anything and only the highest priority survives.
- A leg seen only at tap-on (a bus) has no alighting stop or time: it matches only rules whose
  to_area_id and to_timeframe_group_id are empty.
- fare_transfer_rules: from/to leg groups matched like leg fields; for a transfer within one
  leg group the rule with the smallest transfer_count >= this transfer's number (-1 =
  unlimited) is used; duration_limit is measured by duration_limit_type 0-3 from the previous
  leg, or, when a rule of the same from/to leg groups matched the previous transfer too, from the
  leg where that run began (the spec's "first matched leg": a 60-minute window never slides
  along a chain of transfers); a limit that needs an unknown alighting time is not met.
  fare_transfer_type 0: A + AB, 1: A + AB + B, 2: AB for the first transfer of a sub-journey;
  a later transfer adds BC (type 0 and 2) or BC + C (type 1) to what was paid (the spec's table
  "S + BC").
- When several products or a transfer and a fresh fare are possible, the rider pays the
  cheapest (ties start a new journey). No charge is ever negative.
- Caps (x_fare_caps.txt) limit what a rider category pays per local day / ISO week, per
  network or everywhere; the card carries the progress.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from terminals.errors import NoFare, invariant
from terminals.fares.feed import (
    CapPeriod,
    DurationLimitType,
    FareCap,
    FareFeed,
    FareLegRule,
    FareProductPrice,
    FareTransferRule,
    FareTransferType,
    id_tag,
)


@dataclass(frozen=True, slots=True)
class Leg:
    """One ride. A bus knows only route, boarding stop and time; alighting may be unknown."""

    route_id: str
    board_stop_id: str
    board_at: datetime  # timezone-aware
    alight_stop_id: str | None = None
    alight_at: datetime | None = None
    # An effective fare leg (fare_leg_join_rules.txt) matches rules by its legs' common network,
    # "" when they differ; None: the route's network.
    network_id: str | None = None


def leg_network(feed: FareFeed, leg: Leg) -> str:
    if leg.network_id is not None:
        return leg.network_id
    return feed.route_network.get(leg.route_id, "")


@dataclass(frozen=True, slots=True)
class Journey:
    """The open sub-journey: what a following leg may transfer from."""

    leg_group_id: str  # group of the previous leg
    started_at: datetime  # boarding of the leg the transfer window counts from (see below)
    last_board_at: datetime  # boarding of the previous leg
    last_alight_at: datetime | None  # alighting of the previous leg, if known
    transfers: int  # transfers made so far in this sub-journey
    paid_fen: int  # what the rider paid for the sub-journey so far
    # The from/to leg-group pair of the previous transfer's rule as a card tag (`pair_tag`), 0 if
    # none. While consecutive transfers match rules of that same pair, duration_limit counts from
    # `started_at` (and `window_alight_at`), the leg where the run began; any other pair counts
    # from the previous leg. A tag, not a feed row: it means the same after a tariff update.
    window_pair_tag: int = 0
    window_alight_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CapProgress:
    """How much a rider has paid towards one cap in the period starting on `period_start`."""

    cap_id: str
    period_start: date
    spent_fen: int


@dataclass(frozen=True, slots=True)
class OpenLeg:
    """A leg of a tap_on_off network boarded and not yet tapped off (it travels on the card).

    `max_fare_fen` is what the leg costs if the rider never taps off: the dearest fare from the
    boarding stop on that line for this rider and state (terminals.fares.sectional).
    """

    route_id: str
    board_stop_id: str
    board_at: datetime
    max_fare_fen: int
    vehicle_tag: int = 0  # the vehicle boarded (terminals.fares.sectional.vehicle_tag), 0: a gate
    joins: bool = False  # the leg continues RideState.run (fare_leg_join_rules.txt)


@dataclass(frozen=True, slots=True)
class Run:
    """Consecutive legs that fare_leg_join_rules.txt joins into one effective fare leg, so far.

    Kept only while a next leg could still join (a join rule starts from the last leg's network):
    the next leg, if it joins, is priced as the effective leg from `before` (terminals.fares.
    sectional). `before` is the card state before the first leg (no open leg, no run)."""

    before: RideState
    first_stop_id: str
    first_board_at: datetime
    route_id: str  # the last leg's route: its network decides whether a next leg joins
    network_id: str  # the legs' common network, "" when they differ
    alight_stop_id: str | None  # where the last leg ended (None: not seen, a tap-on only line)
    alight_at: datetime | None
    paid_fen: int  # what the run's legs were charged
    full_paid_fen: int
    legs: int = 1


@dataclass(frozen=True, slots=True)
class RideState:
    """Transit state that travels on the card (CAPP record): transfer window and cap progress.

    A concession card also carries `full`: the state a rider of the default category would have
    after the same taps (its own transfer window and caps), so that each tap's full fare is what
    that rider would pay, and the subsidy claimed is exactly full fare - fare.
    """

    journey: Journey | None = None
    caps: tuple[CapProgress, ...] = ()
    full: RideState | None = None
    open_leg: OpenLeg | None = None  # a two-tap leg waiting for its tap-off
    run: Run | None = None  # legs a next leg may join into one effective leg


EMPTY_STATE = RideState()


@dataclass(frozen=True, slots=True)
class CapStatus:
    cap_id: str
    period: CapPeriod
    period_start: date
    spent_fen: int
    amount_fen: int


@dataclass(frozen=True, slots=True)
class FareQuote:
    """The price of one leg for one rider, and the card state after it."""

    fare_fen: int  # what the card pays
    full_fare_fen: int  # what the default rider category would pay here (subsidy = full - fare)
    rider_category_id: str
    fare_rule: str  # leg group (or leg rule row) and product applied
    fare_product_id: str
    transfer_rule: str | None  # the transfer rule applied, None for a fresh journey
    cap_savings_fen: int  # what caps took off
    caps: tuple[CapStatus, ...]
    state: RideState


# --------------------------------------------------------------------------- leg rules


def _local(feed: FareFeed, moment: datetime) -> datetime:
    invariant(moment.tzinfo is not None, "fare engine times must be timezone-aware")
    return moment.astimezone(ZoneInfo(feed.timezone))


def timeframe_groups_at(feed: FareFeed, moment: datetime) -> frozenset[str]:
    """The timeframe groups whose timeframes contain `moment` (local time, service running)."""
    local = _local(feed, moment)
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    groups = set()
    for timeframe in feed.timeframes:
        service = feed.services.get(timeframe.service_id)
        if service is None or not service.runs_on(local.date()):
            continue
        if timeframe.start_s <= seconds < timeframe.end_s:
            groups.add(timeframe.timeframe_group_id)
    return frozenset(groups)


def _leg_values(feed: FareFeed, leg: Leg) -> dict[str, frozenset[str] | None]:
    """Per fare_leg_rules field, the leg's values (None: unknown, matches only empty)."""
    network = leg_network(feed, leg)
    return {
        "network_id": frozenset({network}) if network else frozenset(),
        "from_area_id": feed.stop_areas.get(leg.board_stop_id, frozenset()),
        "to_area_id": (
            None
            if leg.alight_stop_id is None
            else feed.stop_areas.get(leg.alight_stop_id, frozenset())
        ),
        "from_timeframe_group_id": timeframe_groups_at(feed, leg.board_at),
        "to_timeframe_group_id": (
            None if leg.alight_at is None else timeframe_groups_at(feed, leg.alight_at)
        ),
    }


_LEG_FIELDS = (
    "network_id",
    "from_area_id",
    "to_area_id",
    "from_timeframe_group_id",
    "to_timeframe_group_id",
)


# Per feed and field: the indexes of the rules naming each value, and of those leaving it empty.
# Each field's test depends only on the leg's value and the whole file (never on the other
# fields), so a leg's rules are an intersection of unions; a validator pricing a line's maximum
# asks it for every alighting area. Keyed by id(feed), the feed kept alive beside its index.
_FieldIndex = dict[str, tuple[dict[str, frozenset[int]], frozenset[int]]]
_INDEXES: dict[int, tuple[FareFeed, _FieldIndex]] = {}
_FEEDS_CACHED_MAX = 4


def _field_index(feed: FareFeed) -> _FieldIndex:
    entry = _INDEXES.get(id(feed))
    if entry is not None and entry[0] is feed:
        return entry[1]
    if len(_INDEXES) >= _FEEDS_CACHED_MAX:
        _INDEXES.clear()
    index: _FieldIndex = {}
    for name in _LEG_FIELDS:
        by_value: dict[str, set[int]] = {}
        for i, rule in enumerate(feed.leg_rules):
            by_value.setdefault(getattr(rule, name), set()).add(i)
        empty = frozenset(by_value.pop("", set()))
        index[name] = ({v: frozenset(ids) for v, ids in by_value.items()}, empty)
    _INDEXES[id(feed)] = (feed, index)
    return index


def _passes(feed: FareFeed, name: str, leg_values: frozenset[str] | None) -> frozenset[int]:
    by_value, empty = _field_index(feed)[name]
    named = frozenset().union(*(by_value.get(v, frozenset()) for v in leg_values or ()))
    if feed.has_rule_priority:
        return empty | named
    return named if named else empty


def match_leg_rules(feed: FareFeed, leg: Leg) -> tuple[FareLegRule, ...]:
    """The fare leg rules that apply to `leg`, by the GTFS-Fares v2 matching semantics."""
    values = _leg_values(feed, leg)
    indexes: frozenset[int] | None = None
    for name in _LEG_FIELDS:
        passing = _passes(feed, name, values[name])
        indexes = passing if indexes is None else indexes & passing
        if not indexes:
            return ()
    matching = [feed.leg_rules[i] for i in sorted(indexes or ())]
    if not feed.has_rule_priority or not matching:
        return tuple(matching)
    top = max(rule.rule_priority for rule in matching)
    return tuple(rule for rule in matching if rule.rule_priority == top)


def product_row(
    feed: FareFeed, fare_product_id: str, rider_category_id: str
) -> FareProductPrice | None:
    """The fare_products.txt row that prices the product for a rider on the transit card.

    Row preference: (category, card medium), (category, any medium), (any rider, card
    medium), (any rider, any medium), then the default category's rows.
    """
    rows = [
        p
        for p in feed.products
        if p.fare_product_id == fare_product_id and p.fare_media_id in ("", feed.card_media_id)
    ]
    for category in (rider_category_id, "", feed.default_rider_category):
        for medium in (feed.card_media_id, ""):
            for row in rows:
                if row.rider_category_id == category and row.fare_media_id == medium:
                    return row
    return None


def product_price_fen(feed: FareFeed, fare_product_id: str, rider_category_id: str) -> int | None:
    """The product's price for a rider on the transit card, None if not sold to that rider."""
    row = product_row(feed, fare_product_id, rider_category_id)
    return None if row is None else row.amount_fen


# --------------------------------------------------------------------------- transfers


def pair_tag(rule: FareTransferRule) -> int:
    """The card tag of a transfer rule's from/to leg-group pair (never 0)."""
    return id_tag(f"{rule.from_leg_group_id}>{rule.to_leg_group_id}")


def _window_start(
    feed: FareFeed, rule: FareTransferRule, journey: Journey
) -> tuple[datetime, datetime | None]:
    """Boarding and alighting the rule's duration_limit counts from.

    GTFS: "when a transfer rule with the same from_leg_group_id and to_leg_group_id is matched
    multiple times consecutively ..., the duration_limit ... should be measured starting from
    the first matched leg" — the same pair of groups, whichever of its rows (transfer_count).
    """
    if journey.window_pair_tag and journey.window_pair_tag == pair_tag(rule):
        return journey.started_at, journey.window_alight_at
    return journey.last_board_at, journey.last_alight_at


def _within_limit(feed: FareFeed, rule: FareTransferRule, journey: Journey, leg: Leg) -> bool:
    if rule.duration_limit_s is None:
        return True
    limit = timedelta(seconds=rule.duration_limit_s)
    kind = rule.duration_limit_type
    board_at, alight_at = _window_start(feed, rule, journey)
    start = (
        board_at
        if kind
        in (
            DurationLimitType.DEPARTURE_TO_ARRIVAL,
            DurationLimitType.DEPARTURE_TO_DEPARTURE,
        )
        else alight_at
    )
    end = (
        leg.board_at
        if kind
        in (
            DurationLimitType.DEPARTURE_TO_DEPARTURE,
            DurationLimitType.ARRIVAL_TO_DEPARTURE,
        )
        else leg.alight_at
    )
    if start is None or end is None:
        return False  # the limit needs an alighting time nobody saw
    return timedelta(0) <= end - start <= limit


def match_transfer_rules(
    feed: FareFeed, journey: Journey, to_leg_group_id: str, leg: Leg
) -> tuple[FareTransferRule, ...]:
    """Transfer rules that let `leg` (of `to_leg_group_id`) continue `journey`."""
    if not journey.leg_group_id or not to_leg_group_id:
        return ()
    rules = list(feed.transfer_rules)
    for attribute, value in (
        ("from_leg_group_id", journey.leg_group_id),
        ("to_leg_group_id", to_leg_group_id),
    ):
        listed = {getattr(rule, attribute) for rule in feed.transfer_rules} - {""}
        wanted = value if value in listed else ""
        rules = [rule for rule in rules if getattr(rule, attribute) == wanted]
    number = journey.transfers + 1
    eligible = [
        r
        for r in rules
        if r.transfer_count is not None and (r.transfer_count == -1 or r.transfer_count >= number)
    ]
    finite = [
        r.transfer_count
        for r in eligible
        if r.transfer_count is not None and r.transfer_count != -1
    ]
    smallest = min(finite, default=-1)
    eligible = [r for r in eligible if r.transfer_count == smallest]
    rules = [r for r in rules if r.transfer_count is None] + eligible
    return tuple(r for r in rules if _within_limit(feed, r, journey, leg))


def _transfer_charge(
    feed: FareFeed, rule: FareTransferRule, rider: str, journey: Journey, leg_fare_fen: int
) -> int | None:
    transfer_fen = 0
    if rule.fare_product_id:
        price = product_price_fen(feed, rule.fare_product_id, rider)
        if price is None:
            return None
        transfer_fen = price
    if rule.fare_transfer_type is FareTransferType.FROM_PLUS_TRANSFER:
        charge = transfer_fen
    elif rule.fare_transfer_type is FareTransferType.FROM_PLUS_TRANSFER_PLUS_TO:
        charge = leg_fare_fen + transfer_fen
    elif journey.transfers == 0:  # TRANSFER_ONLY, A > B: the two legs together cost AB
        charge = transfer_fen - journey.paid_fen
    else:  # TRANSFER_ONLY, B > C: S + BC (GTFS reference, cost processing of multiple transfers)
        charge = transfer_fen
    return max(0, charge)


@dataclass(frozen=True, slots=True)
class _Uncapped:
    charge_fen: int
    rule: FareLegRule
    transfer: FareTransferRule | None
    journey: Journey


def _price_uncapped(feed: FareFeed, rider: str, journey: Journey | None, leg: Leg) -> _Uncapped:
    rules = match_leg_rules(feed, leg)
    options: list[_Uncapped] = []
    for rule in rules:
        fare = product_price_fen(feed, rule.fare_product_id, rider)
        if fare is None:
            continue
        fare = max(0, fare)
        fresh = Journey(
            rule.leg_group_id, leg.board_at, leg.board_at, leg.alight_at, 0, fare, 0, leg.alight_at
        )
        options.append(_Uncapped(fare, rule, None, fresh))
        if journey is None:
            continue
        for transfer in match_transfer_rules(feed, journey, rule.leg_group_id, leg):
            charge = _transfer_charge(feed, transfer, rider, journey, fare)
            if charge is None:
                continue
            window_board_at, window_alight_at = _window_start(feed, transfer, journey)
            continued = Journey(
                rule.leg_group_id,
                window_board_at,
                leg.board_at,
                leg.alight_at,
                journey.transfers + 1,
                journey.paid_fen + charge,
                pair_tag(transfer),
                window_alight_at,
            )
            options.append(_Uncapped(charge, rule, transfer, continued))
    if not options:
        raise NoFare(
            f"no fare leg rule prices route {leg.route_id!r} from stop {leg.board_stop_id!r} "
            f"at {leg.board_at.isoformat()} for rider category {rider!r}"
        )
    # Cheapest first; on a tie a fresh journey (no transfer) wins, then the lowest feed row.
    return min(
        options,
        key=lambda o: (
            o.charge_fen,
            o.transfer is not None,
            o.rule.row,
            o.transfer.row if o.transfer else 0,
        ),
    )


# --------------------------------------------------------------------------- caps


def period_start(feed: FareFeed, period: CapPeriod, moment: datetime) -> date:
    day = _local(feed, moment).date()
    return day if period is CapPeriod.DAY else day - timedelta(days=day.weekday())


def _caps_for(feed: FareFeed, rider: str, network: str) -> list[FareCap]:
    return [
        cap
        for cap in feed.caps
        if cap.rider_category_id == rider and cap.network_id in ("", network)
    ]


def _spent(state: RideState, cap: FareCap, start: date) -> int:
    for progress in state.caps:
        if progress.cap_id == cap.cap_id and progress.period_start == start:
            return progress.spent_fen
    return 0


# --------------------------------------------------------------------------- pricing


def price_leg(feed: FareFeed, rider_category_id: str, state: RideState, leg: Leg) -> FareQuote:
    """Price `leg` for a rider of `rider_category_id` whose card carries `state`."""
    chosen = _price_uncapped(feed, rider_category_id, state.journey, leg)
    network = leg_network(feed, leg)
    caps = _caps_for(feed, rider_category_id, network)
    charge = chosen.charge_fen
    starts = {cap.cap_id: period_start(feed, cap.period, leg.board_at) for cap in caps}
    for cap in caps:
        charge = min(charge, max(0, cap.amount_fen - _spent(state, cap, starts[cap.cap_id])))
    invariant(0 <= charge <= chosen.charge_fen, "a cap may only lower a fare")

    # Keep only this rider category's caps: a card whose type changed drops the old progress,
    # and the card holds at most CAPS_PER_CARD_MAX slots (the feed allows no more per category).
    own = {c.cap_id for c in feed.caps if c.rider_category_id == rider_category_id}
    progress = {p.cap_id: p for p in state.caps if p.cap_id in own}
    statuses = []
    for cap in caps:
        spent = _spent(state, cap, starts[cap.cap_id]) + charge
        progress[cap.cap_id] = CapProgress(cap.cap_id, starts[cap.cap_id], spent)
        statuses.append(
            CapStatus(cap.cap_id, cap.period, starts[cap.cap_id], spent, cap.amount_fen)
        )
    journey = replace(chosen.journey, paid_fen=chosen.journey.paid_fen - chosen.charge_fen + charge)
    full, full_state = _full_fare(feed, rider_category_id, state, leg, charge)
    rule = chosen.rule
    return FareQuote(
        fare_fen=charge,
        full_fare_fen=full,
        rider_category_id=rider_category_id,
        fare_rule=f"{rule.leg_group_id or f'leg_rule_row_{rule.row}'}:{rule.fare_product_id}",
        fare_product_id=rule.fare_product_id,
        transfer_rule=(
            None
            if chosen.transfer is None
            else f"transfer_rule_row_{chosen.transfer.row}:"
            f"{chosen.transfer.from_leg_group_id or '*'}>{chosen.transfer.to_leg_group_id or '*'}"
        ),
        cap_savings_fen=chosen.charge_fen - charge,
        caps=tuple(statuses),
        state=RideState(
            journey, tuple(sorted(progress.values(), key=lambda p: p.cap_id)), full_state
        ),
    )


def _full_fare(
    feed: FareFeed, rider_category_id: str, state: RideState, leg: Leg, charge_fen: int
) -> tuple[int, RideState | None]:
    """What a rider of the default category would pay for this tap after the same taps, and
    that rider's state after it. The default rider has a transfer window and caps of its own: a
    senior's free ride restarts the senior's window, not the adult's (pricing the adult fare on
    the senior's window claimed 0 for a ride an adult pays 2 yuan for)."""
    default = feed.default_rider_category
    if rider_category_id == default or not default:
        return charge_fen, None
    try:
        quote = price_leg(feed, default, state.full or EMPTY_STATE, leg)
    except NoFare:  # a product the default rider is not sold: nothing to compare with, and
        return charge_fen, None  # the default rider's window and caps start again afterwards
    return quote.fare_fen, quote.state


def price_tap(feed: FareFeed, card_type: str, state: RideState, leg: Leg) -> FareQuote:
    """Price a tap of a card of `card_type` (its rider category from x_concessions.txt)."""
    return price_leg(feed, feed.rider_category_for(card_type), state, leg)


def total_fen(quotes: Iterable[FareQuote]) -> int:
    return sum(q.fare_fen for q in quotes)
