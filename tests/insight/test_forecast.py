"""The forecast and its baseline as plain functions on daily series."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from insight import forecast

weekly = st.lists(st.integers(0, 5000), min_size=7, max_size=7)


@given(
    pattern=weekly,
    base=st.integers(2000, 10_000),
    slope=st.integers(-20, 20),
    days=st.integers(14, 45),
)
def test_a_weekly_pattern_with_a_linear_trend_is_forecast_exactly(
    pattern: list[int], base: int, slope: int, days: int
) -> None:
    series = [base + slope * t + pattern[t % 7] for t in range(days + 7)]
    predicted = forecast.seasonal_trend(series[:days])
    assert predicted == pytest.approx(series[days:], abs=1e-6)


@given(pattern=weekly, weeks=st.integers(1, 6))
def test_seasonal_naive_repeats_last_week(pattern: list[int], weeks: int) -> None:
    history = [float(v) for v in pattern * weeks]
    assert forecast.seasonal_naive(history) == history[-7:]


def test_history_shorter_than_a_week_is_refused() -> None:
    with pytest.raises(ValueError):
        forecast.seasonal_trend([1.0] * 6)
    with pytest.raises(ValueError):
        forecast.backtest([1.0] * 20, holdout_weeks=2)


@pytest.mark.parametrize("seed", range(5))
def test_with_noisy_days_the_forecast_beats_seasonal_naive(seed: int) -> None:
    rng = random.Random(seed)
    days = 35
    weekend = [t % 7 in (5, 6) for t in range(days)]
    lines = []
    for _ in range(5):
        level = rng.uniform(500, 3000)
        lines.append([level * (0.4 if w else 1.0) * rng.uniform(0.8, 1.2) for w in weekend])
    checks = [forecast.backtest(s, weekend=weekend) for s in lines]
    assert sum(c.mae_forecast for c in checks) < sum(c.mae_naive for c in checks)


def test_weekly_change_reads_a_growth_rate() -> None:
    series = [1000 + 10 * t for t in range(28)]
    mean = sum(series) / 28
    assert forecast.weekly_change(series) == pytest.approx(70 / mean)
    assert forecast.weekly_change([0.0] * 10) == 0.0
