"""A release as files: one CSV per published table and a self-contained HTML report whose charts
are inline SVG (no script, no font, no image from anywhere else). Reads only the release.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from insight import analysis
from insight.network import Network
from insight.service import Release

CHART_W, CHART_H = 720, 190
PLOT_X0, PLOT_X1 = 40, CHART_W - 130  # the legend sits right of the plot
X_LABELS_MAX = 8
HOURS = [f"{hour:02d}h" for hour in range(24)]
OD_ROWS_SHOWN = 30  # the busiest pairs in the report; od.csv has every published pair


def table_csv(release: Release, name: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    table = release.tables[name]
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    return out.getvalue()


def write_release(release: Release, network: Network, out_dir: Path) -> list[Path]:
    """Write every table's CSV, the forecast's CSV and report.html into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in release.tables:
        path = out_dir / f"{name}.csv"
        path.write_text(table_csv(release, name), encoding="utf-8")
        written.append(path)
    path = out_dir / "forecast.csv"
    path.write_text(forecast_csv(release), encoding="utf-8")
    written.append(path)
    path = out_dir / "report.html"
    path.write_text(render_html(release, network), encoding="utf-8")
    written.append(path)
    return written


def forecast_csv(release: Release) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["route_id", "day", "forecast", "mae_forecast", "mae_seasonal_naive"])
    for line in analysis.outlooks(release):
        check = line.backtest
        for day, value in zip(line.forecast_days, line.forecast, strict=True):
            writer.writerow(
                [
                    line.route_id,
                    day.isoformat(),
                    value,
                    f"{check.mae_forecast:.1f}" if check else "",
                    f"{check.mae_naive:.1f}" if check else "",
                ]
            )
    return out.getvalue()


def _polyline(values: Sequence[float], top: float, x0: float, step: float) -> str:
    points = " ".join(
        f"{x0 + i * step:.1f},{CHART_H - 20 - (CHART_H - 40) * v / top:.1f}"
        for i, v in enumerate(values)
    )
    return points


def line_chart(
    title: str,
    series: Mapping[str, Sequence[float]],
    dashed_from: int = -1,
    x_labels: Sequence[str] = (),
) -> str:
    """An SVG line chart of equally spaced points, one line per series, with up to
    X_LABELS_MAX of `x_labels` (one per point) under the axis."""
    length = max([len(x_labels), *(len(v) for v in series.values())])
    top = max((max(v) for v in series.values() if v), default=0) or 1
    step = (PLOT_X1 - PLOT_X0) / max(1, length - 1)
    colours = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{CHART_H}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="4" y="14" font-size="12">{html.escape(title)} (max {top:,.0f})</text>',
        f'<line x1="{PLOT_X0}" y1="{CHART_H - 20}" x2="{PLOT_X1}" y2="{CHART_H - 20}" '
        'stroke="#999"/>',
    ]
    every = max(1, -(-len(x_labels) // X_LABELS_MAX))
    for i, label in enumerate(x_labels):
        if i % every == 0:
            parts.append(
                f'<text x="{PLOT_X0 + i * step:.1f}" y="{CHART_H - 5}" font-size="10" '
                f'text-anchor="middle">{html.escape(label)}</text>'
            )
    for i, (name, values) in enumerate(sorted(series.items())):
        colour = colours[i % len(colours)]
        if dashed_from > 0 and len(values) > dashed_from:
            solid, dashed = values[: dashed_from + 1], values[dashed_from:]
            parts.append(_line(solid, top, step, colour, 0))
            parts.append(_line(dashed, top, step, colour, dashed_from, dash=True))
        else:
            parts.append(_line(values, top, step, colour, 0))
        parts.append(
            f'<text x="{PLOT_X1 + 10}" y="{30 + 12 * i}" font-size="11" fill="{colour}">'
            f"{html.escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _line(
    values: Sequence[float], top: float, step: float, colour: str, offset: int, dash: bool = False
) -> str:
    style = ' stroke-dasharray="4 3"' if dash else ""
    points = _polyline(values, top, PLOT_X0 + offset * step, step)
    return f'<polyline fill="none" stroke="{colour}" stroke-width="1.5"{style} points="{points}"/>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _privacy_section(release: Release) -> str:
    rows = [
        [t.name, len(t.rows), t.cells_suppressed, f"{t.epsilon:.4f}", f"{t.noise_scale:.1f}"]
        for t in release.tables.values()
    ]
    return (
        "<h2>Privacy</h2>"
        f"<p>Every count carries discrete Laplace noise (OpenDP); this release spent epsilon "
        f"{release.epsilon:g} in total, shared equally by its tables, for a privacy unit of one "
        f"rider's travel on one day (at most {release.taps_per_rider_day_max} taps counted). "
        f"No cell of fewer than {release.k_riders_min} riders is published. Card numbers never "
        f"leave the database; each release keys cards by a one-off salted hash.</p>"
        + _table(["table", "cells published", "cells suppressed", "epsilon", "noise scale"], rows)
    )


def _name(network: Network, route: str) -> str:
    return f"line {network.route_names.get(route, route)}"


def _trends_section(release: Release, network: Network) -> str:
    lines = analysis.outlooks(release)
    with_forecast = {
        _name(network, o.route_id): [float(v) for v in o.boardings + o.forecast] for o in lines
    }
    ahead = lines[0].forecast_days if lines else []
    rows = [
        [
            _name(network, o.route_id),
            sum(o.boardings),
            f"{o.weekly_change * 100:+.1f} %",
            f"{o.backtest.mae_forecast:.0f}" if o.backtest else "",
            f"{o.backtest.mae_naive:.0f}" if o.backtest else "",
        ]
        for o in lines
    ]
    return "".join(
        [
            "<h2>Daily boardings and next week's forecast (dashed)</h2>",
            line_chart(
                "boardings per day",
                with_forecast,
                dashed_from=len(release.days()) - 1,
                x_labels=[f"{day:%m-%d}" for day in release.days() + ahead],
            ),
            _table(
                ["line", "boardings", "trend per week", "forecast MAE", "seasonal-naive MAE"], rows
            ),
        ]
    )


def _ridership_section(release: Release, network: Network) -> str:
    profiles = analysis.hourly_profiles(release)
    weekday = {_name(network, r): p for (r, weekend), p in profiles.items() if not weekend}
    weekend = {_name(network, r): p for (r, we), p in profiles.items() if we}
    peaks = [
        [_name(network, p.route_id), "weekend" if p.weekend else "weekday", f"{p.hour:02d}:00",
         p.boardings_per_day]
        for p in analysis.peak_hours(release)
    ]  # fmt: skip
    concession = [
        [t, f"{v['boardings']:,.0f}", f"{v['peak_share'] * 100:.0f} %"]
        for t, v in analysis.card_type_shares(release).items()
    ]
    return "".join(
        [
            "<h2>Hourly profile</h2>",
            line_chart("weekday boardings per hour", weekday, x_labels=HOURS),
            line_chart("weekend boardings per hour", weekend, x_labels=HOURS),
            "<h2>Peak hours</h2>",
            _table(["line", "days", "peak hour", "boardings per day"], peaks),
            "<h2>How card types travel</h2>",
            _table(["card type", "boardings", "share in weekday peaks"], concession),
        ]
    )


def _journeys_section(release: Release, network: Network) -> str:
    share = analysis.inferred_share(release)
    od = sorted(release.tables["od"].rows, key=lambda r: -r[-1])[:OD_ROWS_SHOWN]
    od_rows = [
        [network.stop_names.get(o, o), network.stop_names.get(d, d), t, c] for o, d, t, c in od
    ]
    transfers = [
        [_name(network, a), _name(network, b), c] for a, b, c in release.tables["transfers"].rows
    ]
    inferred = (
        f"<p>Destination inferred for {share * 100:.1f} % of trips.</p>"
        if share is not None
        else "<p>The share of inferred trips is suppressed.</p>"
    )
    return "".join(
        [
            "<h2>Transfers between lines</h2>",
            _table(["from", "to", "transfers"], transfers),
            "<h2>Journeys (origin-destination, inferred by trip chaining)</h2>",
            inferred,
            _table(["origin", "destination", "card type", "trips"], od_rows),
        ]
    )


def render_html(release: Release, network: Network) -> str:
    """The whole report: one page, inline SVG, no script, nothing loaded from elsewhere."""
    body = [
        f"<h1>Ridership {release.period_start} to {release.period_end}</h1>",
        f"<p>Release {release.id}, made {release.created_at:%Y-%m-%d %H:%M} UTC.</p>",
        _trends_section(release, network),
        _ridership_section(release, network),
        _journeys_section(release, network),
        _privacy_section(release),
    ]
    style = (
        "body{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px}"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>onecard insight {release.period_start}..{release.period_end}</title>"
        f"<style>{style}</style></head><body>" + "".join(body) + "</body></html>"
    )
