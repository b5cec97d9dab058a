"""Charts drawn on the server as inline SVG: bars (one value per label) and lines (a series per
bus line over days). No script, no style attribute (the content security policy allows
neither inline): colours are SVG presentation attributes, sizes are in the viewBox, and every
chart has a title and a text table next to it for readers who cannot see it.

Pure: figures in, markup out; the values are formatted by the caller's functions (yuan, numbers
in the reader's locale).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

WIDTH, HEIGHT = 480, 240
LEFT, RIGHT, TOP, BOTTOM = 84, 28, 18, 40
# Distinguishable for the common colour blindnesses (Okabe and Ito's palette).
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#56b4e9", "#f0e442", "#000000")
SERIES_MAX = len(PALETTE)


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int


TICKS_MAX = 6


def tick_indices(count: int, ticks_max: int = TICKS_MAX) -> list[int]:
    """Which of `count` days get a label: evenly spaced, the first and the last always, never
    two closer than the spacing (labels that would overlap)."""
    if count <= ticks_max:
        return list(range(count))
    step = -(-(count - 1) // (ticks_max - 1))
    ticks = list(range(0, count - 1, step))
    if count - 1 - ticks[-1] < step / 2:
        ticks.pop()
    return [*ticks, count - 1]


def _frame(title: str, body: list[str], chart_id: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{chart_id}-title">{escape(title)}</title>' + "".join(body) + "</svg>"
    )


def _axis(top_value: int, shown: Callable[[int], str]) -> list[str]:
    bottom = HEIGHT - BOTTOM
    return [
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#555" />',
        f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="#555" />',
        f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end" font-size="14" '
        f'fill="#222">{escape(shown(top_value))}</text>',
        f'<text x="{LEFT - 6}" y="{bottom}" text-anchor="end" font-size="14" fill="#222">'
        f"{escape(shown(0))}</text>",
    ]


def _y(value: int, top_value: int) -> float:
    span = HEIGHT - TOP - BOTTOM
    return HEIGHT - BOTTOM - (value / top_value) * span if top_value else HEIGHT - BOTTOM


def bar_chart(
    title: str, bars: Sequence[Bar], shown: Callable[[int], str], chart_id: str
) -> Markup:
    """One bar per label, from zero; an empty chart says nothing is there by its title."""
    top_value = max((bar.value for bar in bars), default=0) or 1
    body = _axis(top_value, shown)
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(bars))
    for index, bar in enumerate(bars):
        x = LEFT + index * slot + slot * 0.15
        y = _y(bar.value, top_value)
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{HEIGHT - BOTTOM - y:.1f}" fill="{PALETTE[0]}">'
            f"<title>{escape(bar.label)}: {escape(shown(bar.value))}</title></rect>"
        )
        body.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
            f'font-size="14" fill="#222">{escape(bar.label)}</text>'
        )
    return _frame(title, body, chart_id)


def line_chart(
    title: str,
    days: Sequence[date],
    series: dict[str, dict[date, int]],
    shown: Callable[[int], str],
    day_label: Callable[[date], str],
    chart_id: str,
) -> Markup:
    """One line per series (at most SERIES_MAX, the largest) over `days`, with a legend."""
    ranked = sorted(series, key=lambda name: -sum(series[name].values()))[:SERIES_MAX]
    top_value = max((v for name in ranked for v in series[name].values()), default=0) or 1
    body = _axis(top_value, shown)
    step = (WIDTH - LEFT - RIGHT) / max(1, len(days) - 1)
    for index, name in enumerate(ranked):
        points = " ".join(
            f"{LEFT + i * step:.1f},{_y(series[name].get(day, 0), top_value):.1f}"
            for i, day in enumerate(days)
        )
        colour = PALETTE[index]
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{escape(name)}</title></polyline>"
        )
        body.append(
            f'<rect x="{LEFT + 8 + index * 90}" y="{TOP}" width="10" height="10" '
            f'fill="{colour}" /><text x="{LEFT + 22 + index * 90}" y="{TOP + 9}" font-size="14" '
            f'fill="#222">{escape(name)}</text>'
        )
    for i in tick_indices(len(days)):
        body.append(
            f'<text x="{LEFT + i * step:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle" '
            f'font-size="14" fill="#222">{escape(day_label(days[i]))}</text>'
        )
    return _frame(title, body, chart_id)
