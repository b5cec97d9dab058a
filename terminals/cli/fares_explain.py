"""`onecard fares price --explain`: per tap, every fare product that matched and which one was
charged, as a readable table (by fare medium, rider category and priority)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from cardio.money import yuan
from terminals.fares.engine import FareQuote, Leg, match_leg_rules, product_row
from terminals.fares.feed import FareFeed, FareLegRule

WIDTH = 120


def _rule_label(rule: FareLegRule) -> str:
    return f"{rule.leg_group_id or f'leg_rule_row_{rule.row}'}:{rule.fare_product_id}"


def _title(row: dict[str, str], leg: Leg, out: dict[str, object]) -> str:
    where = f"route {leg.route_id} from {leg.board_stop_id}"
    if leg.alight_stop_id:
        where += f" to {leg.alight_stop_id}"
    if out.get("error"):
        return f"{row['card']} {row['time']} {row['card_type']}, {where}: {out['error']}"
    charged = f"charged {yuan(int(str(out['fare_fen'])))} ({out['fare_rule']}"
    if out.get("transfer_rule"):
        charged += f"; transfer {out['transfer_rule']}"
    if out.get("cap_progress"):
        charged += f"; caps {out['cap_progress']}"
    return f"{row['card']} {row['time']} {row['card_type']}, {where}: {charged})"


def explain_table(feed: FareFeed, leg: Leg, quote: FareQuote | None, title: str) -> Table:
    """One row per fare_products.txt row of each matching leg rule's product."""
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("rule row", "leg group", "product", "fare medium", "rider category"):
        table.add_column(column)
    table.add_column("priority", justify="right")
    table.add_column("amount", justify="right")
    table.add_column("")
    if feed.taps_off(leg.route_id) and leg.alight_stop_id is None:
        table.caption = "no tap-off: the dearest alighting from this stop on this line was charged"
    rider = quote.rider_category_id if quote else feed.default_rider_category
    charged_label = (
        (quote.fare_rule if quote else "").split("|")[0].removeprefix("no tap-off, line maximum: ")
    )
    for rule in match_leg_rules(feed, leg):
        chosen = product_row(feed, rule.fare_product_id, rider)
        for product in (p for p in feed.products if p.fare_product_id == rule.fare_product_id):
            if product is chosen and quote and _rule_label(rule) == charged_label:
                mark = "charged"
            elif product is chosen:
                mark = "matched, not the cheapest"
            elif product.fare_media_id not in ("", feed.card_media_id):
                mark = "another fare medium"
            else:
                mark = "another rider category"
            table.add_row(
                str(rule.row),
                rule.leg_group_id or "-",
                rule.fare_product_id,
                product.fare_media_id or "(any)",
                product.rider_category_id or "(any)",
                str(rule.rule_priority),
                yuan(product.amount_fen),
                mark,
            )
    return table


def print_explained(
    feed: FareFeed,
    rows: Sequence[tuple[dict[str, str], Leg]],
    results: Sequence[dict[str, object]],
    quotes: Sequence[FareQuote | None],
) -> None:
    console = Console(width=WIDTH, soft_wrap=False)
    for (row, leg), out, quote in zip(rows, results, quotes, strict=True):
        console.print(explain_table(feed, leg, quote, _title(row, leg, out)))
