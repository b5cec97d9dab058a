"""Which rider category a card type rides under, and what `onecard fares validate` says about
it: a card type rides as the category of its own id unless x_concessions.txt says otherwise,
and a concession card type that falls back to the default is warned about, per type."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from terminals.cli import app
from terminals.fares.engine import EMPTY_STATE, Leg, price_tap
from terminals.fares.feed import check_feed, sample_feed_dir, validate_feed
from tests.terminals.fares_helpers import at, feed

runner = CliRunner()
PRODUCTS = (
    "fare_product_id,rider_category_id,fare_media_id,amount,currency\n"
    "bus_fare,adult,card,2.00,CNY\n"
    "bus_fare,student,card,1.00,CNY\n"
    "bus_fare,senior,card,0.00,CNY\n"
)
LEGS = "leg_group_id,network_id,fare_product_id\nbus,bus,bus_fare\n"


def _copy_sample(tmp_path: Path) -> Path:
    copy = tmp_path / "feed"
    shutil.copytree(sample_feed_dir(), copy)
    return copy


def test_card_types_ride_as_the_category_of_their_own_id_without_x_concessions() -> None:
    fare_feed = feed(fare_products=PRODUCTS, fare_leg_rules=LEGS, x_concessions=None)
    assert fare_feed.rider_category_for("senior") == "senior"
    assert fare_feed.rider_category_for("student") == "student"
    assert fare_feed.rider_category_for("disabled") == "adult"  # no such category: the default
    leg = Leg("b1", "s1", at(8))
    fares = {t: price_tap(fare_feed, t, EMPTY_STATE, leg) for t in ("adult", "student", "senior")}
    assert [q.fare_fen for q in fares.values()] == [200, 100, 0]
    assert [q.full_fare_fen for q in fares.values()] == [200, 200, 200]


def test_an_x_concessions_row_still_wins_over_the_same_id() -> None:
    fare_feed = feed(
        fare_products=PRODUCTS,
        fare_leg_rules=LEGS,
        x_concessions="card_type,rider_category_id\nsenior,student\n",
    )
    assert fare_feed.rider_category_for("senior") == "student"
    assert fare_feed.card_types_at_default() == ("disabled",)


def test_validate_warns_per_card_type_that_falls_back_to_the_default(tmp_path: Path) -> None:
    copy = _copy_sample(tmp_path)
    (copy / "x_concessions.txt").unlink()
    for name in ("rider_categories.txt", "fare_products.txt"):  # disabled riders: renamed
        text = (copy / name).read_text()
        (copy / name).write_text(text.replace("disabled,", "impaired,"))
    report = check_feed(copy)
    assert report.problems == []
    assert [w.message.split(":")[0] for w in report.warnings] == [
        "card type 'disabled' has no row here and no rider category of that id"
    ]
    result = runner.invoke(app, ["fares", "validate", str(copy)])
    assert result.exit_code == 0, result.output
    assert "warning: x_concessions.txt, field card_type: card type 'disabled'" in result.output
    assert "priced as the default category 'adult'" in " ".join(result.output.split())
    assert "valid (1 warning(s))" in result.output


def test_the_sample_feed_has_neither_problems_nor_warnings() -> None:
    assert check_feed(sample_feed_dir()).warnings == []
    result = runner.invoke(app, ["fares", "validate", str(sample_feed_dir())])
    assert result.exit_code == 0 and "warning" not in result.output


def test_a_feed_whose_rules_name_networks_needs_routes_txt(tmp_path: Path) -> None:
    copy = _copy_sample(tmp_path)
    (copy / "routes.txt").unlink()
    problems = validate_feed(copy)
    assert [(p.file, p.row) for p in problems] == [("routes.txt", 0)]
    assert problems[0].message.startswith("required file is missing")
    result = runner.invoke(app, ["fares", "validate", str(copy)])
    assert result.exit_code == 1
    assert "routes.txt: required file is missing" in result.output
    assert "valid" not in result.stdout


def test_a_feed_whose_rules_name_areas_needs_stop_areas_txt() -> None:
    legs = "leg_group_id,network_id,from_area_id,fare_product_id\nz,bus,zone1,bus_fare\n"
    found = validate_in_memory(fare_products=PRODUCTS, fare_leg_rules=legs, stop_areas=None)
    assert ("stop_areas.txt", 0) in found


def validate_in_memory(**files: str | None) -> set[tuple[str, int]]:
    from terminals.errors import FeedInvalid

    try:
        feed(**files)  # type: ignore[arg-type]
    except FeedInvalid as refused:
        return {(p.file, p.row) for p in refused.problems}
    return set()
