"""What planners read, derived only from a release's published tables (post-processing: it
spends no privacy budget and sees nothing the release did not publish): daily series and trends
per line, weekday/weekend hourly profiles, peak hours, the share of trips with an inferred
destination, and next week's forecast with its backtest against the seasonal-naive baseline.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from insight import forecast
from insight.forecast import Backtest
from insight.service import Release


@dataclass(frozen=True, slots=True)
class LineOutlook:
    route_id: str
    days: list[date]
    boardings: list[int]  # published daily boardings (0 where a day's cell was suppressed)
    weekly_change: float
    forecast_days: list[date]
    forecast: list[int]
    backtest: Backtest | None


@dataclass(frozen=True, slots=True)
class PeakHour:
    route_id: str
    weekend: bool
    hour: int
    boardings_per_day: float


def daily_series(release: Release) -> dict[str, list[int]]:
    days = release.days()
    position = {day.isoformat(): i for i, day in enumerate(days)}
    series: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    for route, day, count in release.tables["line_day"].rows:
        series[route][position[day]] = max(0, count)
    return dict(series)


def outlooks(release: Release) -> list[LineOutlook]:
    days = release.days()
    ahead = [days[-1] + timedelta(days=i + 1) for i in range(forecast.SEASON_DAYS)]
    weekend = [day.isoweekday() >= 6 for day in days]
    out: list[LineOutlook] = []
    for route, series in sorted(daily_series(release).items()):
        values = [float(v) for v in series]
        enough = len(values) >= forecast.SEASON_DAYS
        check = None
        if len(values) >= (forecast.HOLDOUT_WEEKS_DEFAULT + 1) * forecast.SEASON_DAYS:
            check = forecast.backtest(values, weekend=weekend)
        predicted = forecast.seasonal_trend(values, weekend=weekend) if enough else []
        out.append(
            LineOutlook(
                route_id=route,
                days=days,
                boardings=series,
                weekly_change=forecast.weekly_change(values),
                forecast_days=ahead if enough else [],
                forecast=[round(v) for v in predicted],
                backtest=check,
            )
        )
    return out


def day_counts(release: Release) -> tuple[int, int]:
    """Weekdays and weekend days in the release's period (public: the calendar)."""
    weekend = sum(1 for day in release.days() if day.isoweekday() >= 6)
    return len(release.days()) - weekend, weekend


def hourly_profiles(release: Release) -> dict[tuple[str, bool], list[float]]:
    """(line, weekend) -> mean boardings per day in each hour 0..23 (all card types)."""
    weekdays, weekends = day_counts(release)
    profiles: dict[tuple[str, bool], list[float]] = defaultdict(lambda: [0.0] * 24)
    for route, weekend, hour, _card_type, count in release.tables["line_hour"].rows:
        per = weekends if weekend else weekdays
        if per:
            profiles[(route, bool(weekend))][int(hour)] += max(0, count) / per
    return dict(profiles)


def peak_hours(release: Release) -> list[PeakHour]:
    peaks = []
    for (route, weekend), profile in sorted(hourly_profiles(release).items()):
        hour = max(range(24), key=lambda h: profile[h])
        peaks.append(PeakHour(route, weekend, hour, round(profile[hour], 1)))
    return peaks


def card_type_shares(release: Release) -> dict[str, dict[str, float]]:
    """card type -> {"peak": share of its boardings in 7-9 and 17-19 on weekdays, ...}."""
    totals: dict[str, float] = defaultdict(float)
    peak: dict[str, float] = defaultdict(float)
    for _route, weekend, hour, card_type, count in release.tables["line_hour"].rows:
        totals[card_type] += max(0, count)
        if not weekend and int(hour) in (7, 8, 17, 18):
            peak[card_type] += max(0, count)
    return {
        card_type: {"boardings": total, "peak_share": peak[card_type] / total if total else 0.0}
        for card_type, total in sorted(totals.items())
    }


def inferred_share(release: Release) -> float | None:
    """Share of trips whose destination could be inferred (None if a cell was suppressed)."""
    cells = {bool(key): count for key, count in release.tables["od_outcome"].rows}
    if True not in cells or False not in cells:
        return None
    total = max(1, cells[True]) + max(0, cells[False])
    return max(0, cells[True]) / total
