"""The finance console's figures: today at a glance counts what was cleared today per operator,
what waits in quarantine and for how long, what is settled and which breaks are open; the
charts' series give rides and revenue per day and line; ageing buckets count by age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from clearing.engine.synthetic import forged
from clearing.overview import service
from clearing.overview.ageing import BUCKET_DAYS, age_buckets
from clearing.settings import Settings
from clearing.settlement import service as settlement_service
from tests.clearing.test_engine import ADULT, ADULT_2, World, engine_pg_url, world, world_url

__all__ = ["engine_pg_url", "world", "world_url"]

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


async def test_today_at_a_glance_counts_today_per_operator_and_the_quarantine(
    world: World, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    calendar = settlement_service.calendar_of(Settings(database_url=world.url, data_dir=tmp_path))
    await world.upload(
        [
            world.ride(ADULT, 300, at=now - timedelta(minutes=5)),
            world.ride(ADULT_2, 200, at=now - timedelta(minutes=4), route_id="L2"),
            forged(world.ride(ADULT, at=now - timedelta(minutes=3))),
        ]
    )
    await world.engine.clear_pending()
    async with world.ledger.engine.connect() as conn:
        glance = await service.glance(conn, calendar, now)
        points = await service.by_day_and_line(conn, *service.series_window(glance.business_day, 7))
    assert glance.business_day == calendar.business_day(now)
    assert (glance.taps_cleared, glance.revenue_fen) == (2, 500)
    assert [(r.participant_code, r.taps, r.revenue_fen) for r in glance.revenue] == [
        ("bus-1", 2, 500)
    ]
    assert glance.quarantined == 1 and glance.quarantine_by_reason == {"bad_tac": 1}
    assert glance.quarantine_ageing[0].items == 1
    assert glance.last_settled_day is None and not glance.last_closed_day_settled
    assert glance.open_breaks == 0
    assert sorted((p.line, p.rides, p.revenue_fen) for p in points) == [
        ("L1", 1, 300),
        ("L2", 1, 200),
    ]


@given(st.lists(st.integers(0, 100 * 86_400), max_size=50))
def test_every_moment_falls_in_exactly_the_bucket_of_its_age(ages_s: list[int]) -> None:
    moments = [NOW - timedelta(seconds=s) for s in ages_s]
    buckets = age_buckets(moments, NOW)
    assert sum(b.items for b in buckets) == len(ages_s)
    assert [b.days_min for b in buckets] == list(BUCKET_DAYS)
    for bucket in buckets:
        inside = [
            s
            for s in ages_s
            if s >= bucket.days_min * 86_400
            and (bucket.days_max is None or s < bucket.days_max * 86_400)
        ]
        assert bucket.items == len(inside)


def test_a_moment_after_now_is_of_age_zero() -> None:
    assert age_buckets([NOW + timedelta(hours=1)], NOW)[0].items == 1
