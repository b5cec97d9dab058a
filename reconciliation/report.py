"""A business day's reconciliation as files finance staff read: a self-contained HTML report
(tables and inline SVG charts; no script, font, style sheet or image from anywhere) and CSV
exports of its breaks, match rates and the last 30 days' trend.

Pure rendering of a `DayReport` (reconciliation/service.py gathers it); reads nothing itself.
"""

from __future__ import annotations

import csv
import html
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ledger.money import yuan
from reconciliation.checks.base import BreakKind
from reconciliation.checks.ledger import ledger_time
from reconciliation.models import BreakStatus

CHART_W, BAR_H, LABEL_W = 640, 22, 190
TREND_H = 180
AGE_BUCKETS = ((1, "< 1 day"), (3, "1-3 days"), (7, "3-7 days"), (30, "7-30 days"))
AGE_OLDEST = "> 30 days"
BREAK_COLUMNS = (
    "id",
    "kind",
    "key",
    "status",
    "amount_fen",
    "counterpart",
    "assignee",
    "business_day",
    "first_seen_at",
    "age_days",
    "check_name",
)


@dataclass(frozen=True, slots=True)
class DayReport:
    business_day: date
    made_at: datetime
    run: dict[str, Any] | None  # the day's last finished run
    checks: list[dict[str, Any]]  # its match counts per check
    breaks: list[dict[str, Any]]  # open now, or found by a run of the day (with age_days)
    trend: list[dict[str, Any]]  # the last runs of the 30 days up to the day


def age_bucket(days: float) -> str:
    for limit, label in AGE_BUCKETS:
        if days < limit:
            return label
    return AGE_OLDEST


def _rate(check: dict[str, Any]) -> float:
    return 1.0 if not check["total"] else check["matched"] / check["total"]


def not_reached(report: DayReport) -> dict[str, dict[str, Any]]:
    """The checks the day's last run could not do (an outside source did not answer), by check
    name: each is an open `source_not_reached` break that run found."""
    if report.run is None:
        return {}
    return {
        b["check_name"]: b
        for b in report.breaks
        if b["kind"] == BreakKind.SOURCE_NOT_REACHED.value
        and b["last_run_id"] == report.run["id"]
        and not BreakStatus(b["status"]).closed
    }


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def breaks_csv(report: DayReport) -> str:
    return _csv(BREAK_COLUMNS, [[b[c] for c in BREAK_COLUMNS] for b in report.breaks])


def matches_csv(report: DayReport) -> str:
    header = ("check", "matched", "total", "match_rate", "breaks", "seconds")
    rows = [
        [
            c["check_name"],
            c["matched"],
            c["total"],
            f"{_rate(c):.6f}",
            c["breaks"],
            f"{c['seconds']:.3f}",
        ]
        for c in report.checks
    ]
    return _csv(header, rows)


def trend_csv(report: DayReport) -> str:
    header = (
        "business_day",
        "run_id",
        "breaks_found",
        "breaks_new",
        "breaks_closed",
        "breaks_open",
    )
    rows = [
        [
            r["business_day"].isoformat(),
            r["id"],
            r["breaks_found"],
            r["breaks_new"],
            r["breaks_closed"],
            r["breaks_open"],
        ]
        for r in report.trend
    ]
    return _csv(header, rows)


CSV_FILES = {"breaks": breaks_csv, "matches": matches_csv, "trend": trend_csv}


def write_report(report: DayReport, out_dir: Path) -> list[Path]:
    """report-<day>.html and breaks-, matches-, trend-<day>.csv into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    day = report.business_day.isoformat()
    written = []
    for name, render in CSV_FILES.items():
        path = out_dir / f"{name}-{day}.csv"
        path.write_text(render(report), encoding="utf-8")
        written.append(path)
    path = out_dir / f"report-{day}.html"
    path.write_text(render_html(report), encoding="utf-8")
    written.append(path)
    return written


def bar_chart(title: str, bars: Sequence[tuple[str, float, str]], top: float | None = None) -> str:
    """Horizontal bars: (label, value, text shown after the bar)."""
    e = html.escape
    top = top or max((v for _, v, _ in bars), default=0) or 1
    height = 30 + BAR_H * max(1, len(bars))
    width = CHART_W - LABEL_W - 90
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{height}" '
        f'role="img" aria-label="{e(title)}">',
        f'<text x="0" y="16" font-size="14" font-weight="bold">{e(title)}</text>',
    ]
    if not bars:
        parts.append('<text x="0" y="40" font-size="12">none</text>')
    for i, (label, value, shown) in enumerate(bars):
        y = 26 + i * BAR_H
        w = max(1.0, width * value / top) if value else 0
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">{e(label)}</text>')
        parts.append(
            f'<rect x="{LABEL_W}" y="{y + 3}" width="{w:.1f}" height="{BAR_H - 6}" fill="#4a78b5"/>'
        )
        parts.append(
            f'<text x="{LABEL_W + w + 6:.1f}" y="{y + 14}" font-size="12">{e(shown)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def trend_chart(trend: Sequence[dict[str, Any]]) -> str:
    title = "Open breaks after each day's run, last 30 days"
    if not trend:
        return bar_chart(title, [])
    values = [r["breaks_open"] for r in trend]
    top = max(values) or 1
    x0, x1, y0, y1 = 40, CHART_W - 20, TREND_H - 25, 30
    step = (x1 - x0) / max(1, len(values) - 1)
    points = " ".join(
        f"{x0 + i * step:.1f},{y0 - (y0 - y1) * v / top:.1f}" for i, v in enumerate(values)
    )
    dots = "".join(
        f'<circle cx="{x0 + i * step:.1f}" cy="{y0 - (y0 - y1) * v / top:.1f}" r="3" '
        f'fill="#b5484a"><title>{trend[i]["business_day"]}: {v}</title></circle>'
        for i, v in enumerate(values)
    )
    first, last = trend[0]["business_day"], trend[-1]["business_day"]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{TREND_H}" '
        f'role="img" aria-label="{html.escape(title)}">'
        f'<text x="0" y="16" font-size="14" font-weight="bold">{html.escape(title)}</text>'
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#999"/>'
        f'<text x="0" y="{y1 + 4}" font-size="11">{top}</text>'
        f'<text x="0" y="{y0 + 4}" font-size="11">0</text>'
        f'<polyline points="{points}" fill="none" stroke="#b5484a" stroke-width="2"/>{dots}'
        f'<text x="{x0}" y="{TREND_H - 5}" font-size="11">{first}</text>'
        f'<text x="{x1 - 70}" y="{TREND_H - 5}" font-size="11">{last}</text></svg>'
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _charts(report: DayReport) -> str:
    open_breaks = [b for b in report.breaks if b["status"] in ("open", "assigned", "explained")]
    count = Counter(b["kind"] for b in open_breaks)
    amount: Counter[str] = Counter()
    for b in open_breaks:
        amount[b["kind"]] += b["amount_fen"]
    by_kind = [(k, float(n), f"{n} · ¥{yuan(amount[k])}") for k, n in sorted(count.items())]
    ages = Counter(age_bucket(b["age_days"]) for b in open_breaks)
    labels = [label for _, label in AGE_BUCKETS] + [AGE_OLDEST]
    by_age = [(label, float(ages[label]), str(ages[label])) for label in labels]
    # the bar's length is geometry (a float is fine there); the amount shown is exact fen
    by_amount = [(k, float(amount[k]), f"¥{yuan(amount[k])}") for k in sorted(amount)]
    rates = [
        (c["check_name"], _rate(c), f"{_rate(c):.2%} ({c['matched']}/{c['total']})")
        for c in report.checks
    ]
    return "".join(
        f"<figure>{svg}</figure>"
        for svg in (
            bar_chart("Open breaks by kind (count · amount)", by_kind),
            bar_chart("Open breaks by age", by_age),
            bar_chart("Open amount by kind", by_amount),
            bar_chart("Auto-match rate per check", rates, top=1.0),
            trend_chart(report.trend),
        )
    )


STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
    "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}"
    "th{background:#eee}figure{margin:1em 0}"
)


SWEPT = "every account checked against its last entry (the sweep)"


def ledger_read(since: int | None, until: int | None) -> str:
    """What a run's ledger check read in its window [since, until), in words ("" for a run from
    before windows were kept)."""
    if since is None or until is None:
        return ""
    if until <= max(since, 1):
        return "ledger entries read: none (nothing was posted in the run's window)"
    span = "every one" if since == 0 else f"those posted from {ledger_time(since)} UTC"
    return f"ledger entries read: {span} up to {ledger_time(until)} UTC"


def render_html(report: DayReport) -> str:
    e = html.escape
    run = report.run
    if run is None:
        summary = "<p>No finished reconciliation run of this day yet.</p>"
    else:
        summary = (
            f"<p>Run {run['id']} ({e(run['trigger'])}) finished "
            f"{run['finished_at']:%Y-%m-%d %H:%M} UTC: {run['breaks_found']} breaks found, {run['breaks_new']} new, "
            f"{run['breaks_closed']} closed by the data, {run['breaks_open']} open in all.</p>"
        )
        read = ledger_read(run["ledger_since_ns"], run["ledger_until_ns"])
        read += f"; {SWEPT}" if read and run["ledger_accounts_swept"] else ""
        summary += f"<p>{e(read[0].upper() + read[1:])}.</p>" if read else ""
    unreached = not_reached(report)
    summary += "".join(
        f"<p><strong>Not checked: {e(b['details'].get('why', ''))}. Run again: "
        f"{e(b['details'].get('todo', ''))}.</strong></p>"
        for b in unreached.values()
    )
    checks = _table(
        ("check", "matched", "total", "auto-match rate", "breaks"),
        [
            (
                c["check_name"],
                c["matched"],
                c["total"],
                f"{unreached[c['check_name']]['counterpart']}: not reached"
                if c["check_name"] in unreached
                else f"{_rate(c):.2%}",
                c["breaks"],
            )
            for c in report.checks
        ],
    )
    rows = [
        (
            b["id"],
            b["kind"],
            b["status"],
            yuan(b["amount_fen"]),
            b["counterpart"],
            b["assignee"] or "",
            f"{b['first_seen_at']:%Y-%m-%d %H:%M}",
            b["age_days"],
            b["key"],
        )
        for b in report.breaks
    ]
    breaks = _table(
        (
            "id",
            "kind",
            "status",
            "amount ¥",
            "counterpart",
            "assignee",
            "first seen (UTC)",
            "age (days)",
            "key",
        ),
        rows,
    )
    day = report.business_day.isoformat()
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Reconciliation {day}</title><style>{STYLE}</style></head><body>"
        f"<h1>Reconciliation of business day {day}</h1>{summary}"
        f"<p>Report made {report.made_at:%Y-%m-%d %H:%M} UTC.</p>"
        f"<h2>Charts</h2>{_charts(report)}<h2>Checks</h2>{checks}"
        f"<h2>Breaks ({len(report.breaks)})</h2>{breaks}</body></html>"
    )
