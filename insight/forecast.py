"""Trends and a next-week forecast of daily boardings, as plain functions on daily series.

The forecast of a day is the mean of the same weekday over the last few weeks, moved along the
drift within weekdays when the drift stands out of the noise: a weekly pattern with a linear trend
is forecast exactly and day-to-day noise is averaged out. It is judged against the seasonal-naive baseline (the same
weekday one week earlier) on held-out weeks: each held-out week is forecast from the days before
it only. No I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

SEASON_DAYS = 7
WEEKS_MAX = 4  # weeks of history the forecast averages over
HOLDOUT_WEEKS_DEFAULT = 2
DRIFT_T_MIN = 2.0  # a drift is used only this many standard errors away from none
TREND_EXACT = 1e-9  # below this relative standard error the drift is exact (no noise at all)

Forecaster = Callable[[Sequence[float], int], list[float]]


def seasonal_naive(history: Sequence[float], horizon: int = SEASON_DAYS) -> list[float]:
    """Each day as the same weekday of the last week seen."""
    if len(history) < SEASON_DAYS:
        raise ValueError(f"a seasonal forecast needs at least {SEASON_DAYS} days of history")
    last_week = list(history[-SEASON_DAYS:])
    return [last_week[i % SEASON_DAYS] for i in range(horizon)]


def _slope(values: Sequence[float]) -> float:
    """Least-squares slope of values against 0, 1, 2, ... (0 for fewer than two values)."""
    n = len(values)
    if n < 2:
        return 0.0
    x_mean = (n - 1) / 2
    y_mean = sum(values) / n
    num = sum((i - x_mean) * (v - y_mean) for i, v in enumerate(values))
    den = sum((i - x_mean) ** 2 for i in range(n))
    return num / den


def _by_weekday(history: Sequence[float]) -> list[list[tuple[int, float]]]:
    """(day index, value) of each weekday position, positions aligned so that position p is
    the weekday of forecast day p (the day after the history's last is position 0)."""
    n = len(history)
    groups: list[list[tuple[int, float]]] = [[] for _ in range(SEASON_DAYS)]
    for i, value in enumerate(history):
        groups[(i - n) % SEASON_DAYS].append((i, value))
    return groups


def drift_per_day(history: Sequence[float]) -> float:
    """The trend within weekdays (pooled least squares of each weekday against time), kept only
    when it stands out of the day-to-day noise (|t| >= DRIFT_T_MIN): a noisy drift carried a
    week ahead costs more than it gains."""
    groups = [g for g in _by_weekday(history) if len(g) >= 2]
    sxx = sxy = 0.0
    for group in groups:
        x_mean = sum(i for i, _ in group) / len(group)
        y_mean = sum(v for _, v in group) / len(group)
        sxx += sum((i - x_mean) ** 2 for i, _ in group)
        sxy += sum((i - x_mean) * (v - y_mean) for i, v in group)
    dof = sum(len(g) for g in groups) - len(groups) - 1
    if sxx == 0 or dof < 1:
        return 0.0
    slope = sxy / sxx
    residual = 0.0
    for group in groups:
        x_mean = sum(i for i, _ in group) / len(group)
        y_mean = sum(v for _, v in group) / len(group)
        residual += sum((v - y_mean - slope * (i - x_mean)) ** 2 for i, v in group)
    standard_error = (residual / dof / sxx) ** 0.5
    if standard_error <= TREND_EXACT * max(1.0, abs(slope)):
        return slope
    return slope if abs(slope) / standard_error >= DRIFT_T_MIN else 0.0


def _weeks(history: Sequence[float], drift: float) -> list[list[float]]:
    """The last (up to WEEKS_MAX) whole weeks, detrended, as rows of positions 0..6."""
    n = len(history)
    weeks = min(WEEKS_MAX, n // SEASON_DAYS)
    first = n - weeks * SEASON_DAYS
    return [
        [history[first + w * SEASON_DAYS + p] - drift * (first + w * SEASON_DAYS + p)
         for p in range(SEASON_DAYS)]
        for w in range(weeks)
    ]  # fmt: skip


def _profile(rows: list[list[float]], groups: Sequence[int]) -> list[float]:
    """Each position's expected (detrended) value: its day type's level plus its own deviation
    from that level, shrunk towards none by how far the deviations stand out of the week-to-week
    noise (positive-part James-Stein): exact weekday patterns are kept, noise is pooled away."""
    weeks = len(rows)
    members: dict[int, list[int]] = {}
    for position, group in enumerate(groups):
        members.setdefault(group, []).append(position)
    level: dict[int, float] = {}
    week_mean: dict[tuple[int, int], float] = {}
    for group, positions in members.items():
        for w, row in enumerate(rows):
            week_mean[(w, group)] = sum(row[p] for p in positions) / len(positions)
        level[group] = sum(week_mean[(w, group)] for w in range(weeks)) / weeks
    deviation = [
        sum(rows[w][p] - week_mean[(w, groups[p])] for w in range(weeks)) / weeks
        for p in range(SEASON_DAYS)
    ]
    residual = sum(
        (rows[w][p] - week_mean[(w, groups[p])] - deviation[p]) ** 2
        for w in range(weeks)
        for p in range(SEASON_DAYS)
    )
    dof = (weeks - 1) * (SEASON_DAYS - len(members))
    noise = residual / dof if dof > 0 else 0.0
    profile = [0.0] * SEASON_DAYS
    for group, positions in members.items():
        spread = sum(deviation[p] ** 2 for p in positions) / max(1, len(positions) - 1)
        keep = 1.0 if noise == 0 else max(0.0, 1 - (noise / weeks) / spread) if spread else 0.0
        for p in positions:
            profile[p] = level[group] + keep * deviation[p]
    return profile


def seasonal_trend(
    history: Sequence[float], horizon: int = SEASON_DAYS, weekend: Sequence[bool] | None = None
) -> list[float]:
    """Next days from the last (up to WEEKS_MAX) weeks: a level per day type (weekday/weekend
    when `weekend` flags the history's days, else per weekday), each weekday's own deviation
    shrunk by its evidence, moved along the drift (if any, see drift_per_day); never negative."""
    n = len(history)
    if n < SEASON_DAYS:
        raise ValueError(f"a seasonal forecast needs at least {SEASON_DAYS} days of history")
    if weekend is not None and len(weekend) != n:
        raise ValueError("weekend flags one day of the history each")
    drift = drift_per_day(history)
    rows = _weeks(history, drift)
    groups = (
        [int(weekend[n - SEASON_DAYS + p]) for p in range(SEASON_DAYS)]
        if weekend is not None
        else list(range(SEASON_DAYS))
    )
    profile = _profile(rows, groups)
    return [max(0.0, profile[d % SEASON_DAYS] + drift * (n + d)) for d in range(horizon)]


@dataclass(frozen=True, slots=True)
class Backtest:
    """Mean absolute errors on held-out weeks of the forecast and of the seasonal-naive baseline."""

    weeks: int
    mae_forecast: float
    mae_naive: float

    @property
    def beats_naive(self) -> bool:
        return self.mae_forecast < self.mae_naive


def mean_absolute_error(actual: Sequence[float], predicted: Sequence[float]) -> float:
    if len(actual) != len(predicted) or not actual:
        raise ValueError("errors need equally long, non-empty series")
    return sum(abs(a - p) for a, p in zip(actual, predicted, strict=True)) / len(actual)


def backtest(
    series: Sequence[float],
    holdout_weeks: int = HOLDOUT_WEEKS_DEFAULT,
    weekend: Sequence[bool] | None = None,
) -> Backtest:
    """Forecast each of the last `holdout_weeks` whole weeks from the days before it only."""
    if holdout_weeks < 1 or len(series) < (holdout_weeks + 1) * SEASON_DAYS:
        raise ValueError(
            f"a backtest of {holdout_weeks} weeks needs {(holdout_weeks + 1) * SEASON_DAYS} days"
        )
    errors_forecast: list[float] = []
    errors_naive: list[float] = []
    for week in range(holdout_weeks, 0, -1):
        cut = len(series) - week * SEASON_DAYS
        history, actual = series[:cut], series[cut : cut + SEASON_DAYS]
        flags = None if weekend is None else weekend[:cut]
        predicted = seasonal_trend(history, weekend=flags)
        errors_forecast.append(mean_absolute_error(actual, predicted))
        errors_naive.append(mean_absolute_error(actual, seasonal_naive(history)))
    return Backtest(
        weeks=holdout_weeks,
        mae_forecast=sum(errors_forecast) / holdout_weeks,
        mae_naive=sum(errors_naive) / holdout_weeks,
    )


def weekly_change(series: Sequence[float]) -> float:
    """The trend of a daily series as a share of its mean per week (0.05 = +5 % a week)."""
    mean = sum(series) / len(series) if series else 0.0
    if mean <= 0:
        return 0.0
    return _slope(series) * SEASON_DAYS / mean
