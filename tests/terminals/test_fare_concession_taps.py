"""A concession card's full fare travels on the card: a senior tapping at a validator claims,
tap by tap, exactly what an adult card pays for the same rides (transfer allowance and caps)."""

from __future__ import annotations

from cardio.records import CardType
from terminals.terminal import TapOutcome


def test_a_senior_card_claims_what_an_adult_card_pays_for_the_same_rides(
    validator, make_card, journal, clock
):
    senior, adult = make_card(CardType.SENIOR), make_card(CardType.ADULT)
    clock.advance(minutes=-90)  # 06:30 Beijing
    for _ in range(3):  # 06:30, 07:30, 08:30: transfer, then the allowance is spent
        assert validator.tap(senior).outcome is TapOutcome.OK
        assert validator.tap(adult).outcome is TapOutcome.OK
        clock.advance(minutes=60)
    records = journal.records()
    seniors = [r for r in records if r.rider_category == "senior"]
    adults = [r for r in records if r.rider_category == "adult"]
    assert [r.amount_fen for r in adults] == [200, 0, 200]
    assert [r.full_fare_fen for r in seniors] == [200, 0, 200]
    assert [r.amount_fen for r in seniors] == [0, 0, 0]
