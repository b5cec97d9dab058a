"""The settlement API's contract with its callers: what the schema states about business days
is what the service takes, a statement names a participant the registry knows, and a report
range that no single answer can cover is paged, never refused."""

from __future__ import annotations

import re
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from clearing.calendar import BUSINESS_DAY_FIRST, BUSINESS_DAY_LAST
from clearing.settlement.endpoints import DAY_PATTERN, REPORT_DAYS_MAX
from tests.clearing.apiharness import running_app, world


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31)))
def test_the_day_pattern_matches_exactly_the_days_anyone_may_name(day: date) -> None:
    named = re.fullmatch(DAY_PATTERN, day.isoformat()) is not None
    assert named == (BUSINESS_DAY_FIRST <= day <= BUSINESS_DAY_LAST)


def test_the_day_pattern_refuses_days_no_calendar_has() -> None:
    for text in ("2001-02-29", "2100-02-29", "2026-04-31", "2026-13-01", "2026-00-10", "2026-1-1"):
        assert re.fullmatch(DAY_PATTERN, text) is None, text
    for text in ("2000-02-29", "2096-02-29", "2100-12-31", "2000-01-01"):
        assert re.fullmatch(DAY_PATTERN, text) is not None, text


async def test_the_schema_states_the_bounds_of_every_business_day(sqlite_url, tmp_path) -> None:
    async with running_app(sqlite_url, tmp_path) as (_, client):
        schema = (await client.get("/openapi.json")).json()
    days = {
        (path, method, parameter["name"]): parameter["schema"]
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if parameter["name"] in ("business_day", "from", "to")
    }
    settlement = [key for key in days if key[0].startswith(("/v1/settlements", "/v1/subsidies"))]
    assert len(settlement) == 5  # 3 settlement paths, from and to
    for key, day in days.items():  # settlement's and every other business day (reconciliation)
        states = [day, *day.get("anyOf", [])]
        assert any(form.get("pattern") == DAY_PATTERN for form in states), key


async def test_a_statement_for_an_unknown_participant_is_404(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        path = "/v1/settlements/2026-11-28/statements/{}"
        unknown = await w.client.get(path.format("no-such-bus"), headers=w.auth("finance"))
        assert unknown.status_code == 404, unknown.text
        assert unknown.headers["content-type"].startswith("application/problem+json")
        known = await w.client.get(path.format(w.participant), headers=w.auth("finance"))
        assert known.status_code == 200 and known.json() == []


async def test_a_range_ending_before_it_starts_holds_no_day(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        answer = await w.client.get(
            "/v1/subsidies",
            params={"from": "2026-03-01", "to": "2026-02-01"},
            headers=w.auth("finance"),
        )
        assert answer.status_code == 200 and answer.json() == []


async def test_a_long_range_is_answered_in_pages_linked_by_rel_next(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        first = date(2001, 1, 1)
        answer = await w.client.get(
            "/v1/subsidies",
            params={"from": str(first), "to": "2099-12-31"},
            headers=w.auth("finance"),
        )
        assert answer.status_code == 200, answer.text
        following = first + timedelta(days=REPORT_DAYS_MAX)
        assert (
            answer.headers["link"] == f'</v1/subsidies?from={following}&to=2099-12-31>; rel="next"'
        )
        nxt = await w.client.get(
            answer.headers["link"][1:].split(">")[0], headers=w.auth("finance")
        )
        assert nxt.status_code == 200 and "link" in nxt.headers
        short = await w.client.get(
            "/v1/subsidies",
            params={"from": "2026-01-01", "to": "2026-12-31"},
            headers=w.auth("finance"),
        )
        assert short.status_code == 200 and "link" not in short.headers
