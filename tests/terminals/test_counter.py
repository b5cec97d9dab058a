"""A biller's counter terminal: a bill paid by card is one purchase of the bill's amount,
journaled with the bill; the same bill is never charged twice (a torn debit completes at the
next presentation); a card short of the amount is refused with nothing charged."""

from __future__ import annotations

import pytest

from terminals.counter import BillCounter
from terminals.sam import Psam
from terminals.terminal import TapOutcome


def test_a_bill_is_paid_once_even_after_a_torn_debit(journal, sam, make_card, clock, lists):
    payer = make_card(balance_fen=10_000)
    till = BillCounter(journal, Psam(sam), lists, clock=clock)
    payer.tear_next(0x54)
    assert till.pay(payer, "city-water-W1001-2026-12", 3_987).outcome is TapOutcome.TORN
    payer.insert()
    again = till.pay(payer, "city-water-W1001-2026-12", 3_987)
    assert again.outcome is TapOutcome.RECOVERED and payer.card.balance_fen == 10_000 - 3_987
    other = till.pay(payer, "city-water-W1002-2026-12", 1_000)
    assert other.outcome is TapOutcome.OK and payer.card.balance_fen == 10_000 - 4_987
    first, second = journal.records()
    assert (first.kind.value, first.fare_rule, first.amount_fen) == (
        "purchase",
        "bill:city-water-W1001-2026-12",
        3_987,
    )
    assert first.status.value == second.status.value == "complete" and second.tac is not None


def test_a_card_short_of_the_bill_is_refused_and_nothing_is_charged(
    journal, sam, make_card, clock, lists
):
    payer = make_card(balance_fen=500)
    till = BillCounter(journal, Psam(sam), lists, clock=clock)
    result = till.pay(payer, "city-power-P1001-2026-12", 12_757)
    assert result.outcome is TapOutcome.INSUFFICIENT_BALANCE and "top up" in result.message
    assert payer.card.balance_fen == 500 and journal.records() == []
    with pytest.raises(ValueError):
        till.pay(payer, "x" * 80, 100)
