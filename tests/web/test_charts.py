"""The console's charts are inline SVG drawn on the server: titled for screen readers, bars
in proportion to their values, labels escaped, no inline style (the content security policy
refuses it) and day labels that never crowd each other."""

from __future__ import annotations

import re
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from clearing.web import charts


def test_bars_are_in_proportion_titled_and_escaped() -> None:
    svg = str(
        charts.bar_chart(
            "Open <breaks>",
            [charts.Bar("0-1", 4), charts.Bar("<b>", 2), charts.Bar("30+", 0)],
            str,
            "ageing",
        )
    )
    assert '<title id="ageing-title">Open &lt;breaks&gt;</title>' in svg
    assert 'aria-labelledby="ageing-title"' in svg and 'role="img"' in svg
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', svg)]
    assert heights[0] == 2 * heights[1] and heights[2] == 0
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert "style=" not in svg and "<script" not in svg


def test_lines_draw_the_largest_series_with_a_legend() -> None:
    days = [date(2026, 12, 1) + timedelta(days=n) for n in range(3)]
    series = {f"L{n}": {days[0]: n, days[2]: n} for n in range(charts.SERIES_MAX + 2)}
    svg = str(charts.line_chart("Rides", days, series, str, str, "rides"))
    assert svg.count("<polyline") == charts.SERIES_MAX
    assert "L0<" not in svg and "L1<" not in svg  # the two smallest are left out
    assert f"L{charts.SERIES_MAX + 1}" in svg


@given(st.integers(1, 400), st.integers(2, 12))
def test_day_labels_keep_first_and_last_and_are_spaced(count: int, ticks_max: int) -> None:
    ticks = charts.tick_indices(count, ticks_max)
    assert ticks[0] == 0 and ticks[-1] == count - 1
    assert len(ticks) <= max(ticks_max, 1) or count <= ticks_max
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert all(gap >= 1 for gap in gaps)
    if count > ticks_max:
        step = -(-(count - 1) // (ticks_max - 1))
        assert min(gaps) >= step / 2
