"""Fares: a GTFS-Fares v2 feed (plus onecard's cap and concession extensions) and the pure engine."""

from terminals.fares.engine import (
    EMPTY_STATE,
    FareQuote,
    Journey,
    Leg,
    RideState,
    price_leg,
    price_tap,
)
from terminals.fares.feed import (
    CardType,
    FareFeed,
    FeedProblem,
    FeedReport,
    check_feed,
    load_feed,
    load_sample_feed,
    sample_feed_dir,
    validate_feed,
)
from terminals.fares.journeys import CardTap, price_card_legs, price_taps

__all__ = [
    "EMPTY_STATE",
    "CardTap",
    "CardType",
    "FareFeed",
    "FareQuote",
    "FeedProblem",
    "FeedReport",
    "Journey",
    "Leg",
    "check_feed",
    "RideState",
    "load_feed",
    "load_sample_feed",
    "price_leg",
    "price_tap",
    "price_card_legs",
    "price_taps",
    "sample_feed_dir",
    "validate_feed",
]
