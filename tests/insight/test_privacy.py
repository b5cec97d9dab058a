"""The privacy rules as plain functions: noise calibration against OpenDP's own accounting, the
k-rider rule, and the per-release card key (the SQL form equals HMAC-SHA256)."""

from __future__ import annotations

import hashlib
import hmac
import statistics
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from insight import privacy
from insight.service import publish_table
from tests.insight.cityfixture import seeded_noise


@given(
    epsilon=st.floats(min_value=0.01, max_value=10),
    sensitivity=st.integers(min_value=1, max_value=50),
)
def test_noise_plan_spends_exactly_the_budget_asked(epsilon: float, sensitivity: int) -> None:
    plan = privacy.plan_noise(epsilon, sensitivity)
    spent = privacy._measurement(plan.scale).map(sensitivity)
    assert spent <= epsilon * (1 + privacy.EPSILON_SLACK)
    assert spent >= epsilon * 0.999  # not wasting accuracy on an unspent budget either


def test_a_release_budget_is_shared_by_its_tables() -> None:
    assert privacy.split_budget(1.0, 4) == 0.25
    with pytest.raises(AssertionError):
        privacy.split_budget(1.0, 0)


def test_noise_is_centred_and_of_the_planned_scale() -> None:
    plan = privacy.plan_noise(0.5, 4)  # scale 8
    noisy = privacy.add_noise([1000] * 4000, plan)
    errors = [n - 1000 for n in noisy]
    assert abs(statistics.mean(errors)) < 1.0
    # Laplace: mean absolute deviation = scale.
    assert 7.0 < statistics.mean(abs(e) for e in errors) < 9.0
    assert all(isinstance(n, int) for n in noisy)


def test_the_tests_seeded_noise_is_of_the_planned_scale_and_repeats() -> None:
    plan = privacy.plan_noise(0.5, 4)  # scale 8
    noisy = seeded_noise(1)([1000] * 4000, plan)
    errors = [n - 1000 for n in noisy]
    assert abs(statistics.mean(errors)) < 1.0
    assert 7.0 < statistics.mean(abs(e) for e in errors) < 9.0
    assert noisy == seeded_noise(1)([1000] * 4000, plan)


def test_each_cell_gets_the_same_seeded_draw_whatever_order_sql_returns_the_cells() -> None:
    plan = privacy.plan_noise(1 / 6, 8)
    first = date(2026, 10, 1)
    cells = [("2", first + timedelta(days=d), 600 + d, 300) for d in range(30)]
    cells += [("1", first + timedelta(days=d), 1100 + d, 500) for d in range(30)]
    columns = ("route_id", "business_day")
    one = publish_table("line_day", columns, cells, plan, 10, seeded_noise(7))
    two = publish_table("line_day", columns, cells[::-1], plan, 10, seeded_noise(7))
    assert one.rows == two.rows
    assert [row[:2] for row in one.rows] == sorted(row[:2] for row in one.rows)


@given(
    cells=st.lists(
        st.tuples(st.integers(0, 5000), st.integers(0, 200)).map(lambda t: (t[0], min(t[0], t[1]))),
        max_size=60,
    ),
    k=st.integers(2, 50),
)
def test_no_cell_of_fewer_than_k_riders_or_a_count_under_k_is_published(
    cells: list[tuple[int, int]], k: int
) -> None:
    counted = [(f"stop{i}", count, riders) for i, (count, riders) in enumerate(cells)]
    table = publish_table("t", ("stop_id",), counted, privacy.plan_noise(1.0, 8), k)
    riders_of = {f"stop{i}": riders for i, (_, riders) in enumerate(cells)}
    for stop, noisy in table.rows:
        assert riders_of[stop] >= k
        assert noisy >= k
    assert table.columns == ("stop_id", "count")  # the rider count itself is never published
    assert table.cells_suppressed == len(cells) - len(table.rows)


@given(
    salt=st.binary(min_size=1, max_size=64), card=st.text("0123456789", min_size=16, max_size=16)
)
def test_the_sql_form_of_the_card_key_is_hmac_sha256(salt: bytes, card: str) -> None:
    ipad, opad = privacy.hmac_pads(salt)
    sql_form = hashlib.sha256(opad + hashlib.sha256(ipad + card.encode()).digest()).digest()
    assert sql_form == hmac.new(salt, card.encode(), hashlib.sha256).digest()
    assert sql_form == privacy.pseudonym(salt, card)


def test_the_tail_bound_holds_for_the_stated_probability() -> None:
    plan = privacy.plan_noise(1.0, 8)
    bound = privacy.tail_bound(plan, 0.01)
    noisy = privacy.add_noise([0] * 5000, plan)
    beyond = sum(1 for n in noisy if abs(n) > bound)
    assert beyond < 5000 * 0.02
