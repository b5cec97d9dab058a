"""Settlement: commission math (Hypothesis), the instruction files, and a settlement run that
posts payouts once however often it runs."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing import books
from clearing.calendar import BusinessCalendar, parse_cutoff
from clearing.settlement.fees import FeeError, commission_fen, day_totals
from clearing.settlement.files import (
    Debtor,
    PayoutLine,
    check_pain001,
    pain001_xml,
    settlement_csv,
)
from clearing.settlement.service import DayNotClosed, settle_day, write_files
from tests.clearing.test_engine import (
    ADULT,
    ADULT_2,
    SENIOR,
    World,
    engine_pg_url,
    world,
    world_url,
)

__all__ = ["engine_pg_url", "world", "world_url"]

gross = st.integers(min_value=0, max_value=10**13)
rate = st.integers(min_value=0, max_value=10_000)


@given(gross, rate)
def test_commission_is_gross_times_rate_rounded_half_up(gross_fen: int, bp: int) -> None:
    fee = commission_fen(gross_fen, bp)
    exact_times_10000 = gross_fen * bp
    # |fee - exact| <= 1/2 fen, and exactly half rounds up
    assert abs(fee * 10_000 - exact_times_10000) * 2 <= 10_000
    if (exact_times_10000 % 10_000) * 2 == 10_000:
        assert fee * 10_000 > exact_times_10000
    assert 0 <= fee <= gross_fen


@given(gross, gross, rate)
def test_commission_never_falls_when_gross_grows(a: int, b: int, bp: int) -> None:
    low, high = sorted((a, b))
    assert commission_fen(low, bp) <= commission_fen(high, bp)


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9), rate)
def test_net_plus_commission_is_gross(fares: int, subsidy: int, insured: int, bp: int) -> None:
    totals = day_totals(
        "bus-1", taps=1, fares_fen=fares, subsidy_fen=subsidy, insured_fen=insured, commission_bp=bp
    )
    assert totals.net_fen + totals.commission_fen == fares + subsidy + insured
    assert totals.net_fen >= 0


def test_commission_examples_and_bounds() -> None:
    assert commission_fen(10_000, 50) == 50  # 0.5 % of 100 yuan
    assert commission_fen(100, 50) == 1  # 0.5 fen rounds up
    assert commission_fen(99, 50) == 0  # 0.495 fen rounds down
    assert commission_fen(0, 10_000) == 0
    assert commission_fen(123, 10_000) == 123
    for bad in ((-1, 50), (100, -1), (100, 10_001)):
        with pytest.raises(FeeError):
            commission_fen(*bad)


def test_business_day_follows_the_cutoff() -> None:
    calendar = BusinessCalendar(ZoneInfo("Asia/Shanghai"), parse_cutoff("04:00"))
    night_bus = datetime(2026, 3, 2, 1, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    morning = datetime(2026, 3, 2, 4, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert calendar.business_day(night_bus) == date(2026, 3, 1)
    assert calendar.business_day(morning) == date(2026, 3, 2)
    assert calendar.day_end(date(2026, 3, 1)) == datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
    late = calendar.settlement_day(night_bus, morning + timedelta(days=3), date(2026, 3, 3))
    assert late == date(2026, 3, 4)  # its day is settled: it goes to the first open day
    with pytest.raises(ValueError):
        parse_cutoff("25:00")


lines_strategy = st.lists(
    st.builds(
        PayoutLine,
        participant_code=st.from_regex(r"\A[a-z][a-z0-9-]{0,20}\Z"),
        participant_name=st.text(max_size=60).map(lambda s: "Co " + s),
        bank_name=st.just("Bank of the City"),
        bank_account=st.from_regex(r"\A[0-9]{10,30}\Z"),
        taps=st.integers(0, 10**6),
        fares_fen=st.integers(0, 10**9),
        subsidy_fen=st.integers(0, 10**7),
        insured_fen=st.integers(0, 10**7),
        commission_bp=rate,
        commission_fen=st.just(0),
        net_fen=st.integers(1, 10**9),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda line: line.participant_code,
)


@settings(max_examples=60)
@given(lines_strategy)
def test_pain001_is_structurally_valid_and_sums_match(lines: list[PayoutLine]) -> None:
    xml = pain001_xml(
        date(2026, 3, 1),
        datetime(2026, 3, 1, 20, 10, tzinfo=UTC),
        date(2026, 3, 2),
        Debtor("onecard", "6222000000000000001", "Bank of the City"),
        lines,
    )
    assert check_pain001(xml) == []
    assert f"<NbOfTxs>{len(lines)}</NbOfTxs>".encode() in xml


def test_control_characters_in_names_never_break_the_xml() -> None:
    line = PayoutLine("bus-1", "Bus\x00One\x1f\ufffe", "Bank\x07", "6222", 1, 100, 0, 0, 0, 0, 100)
    xml = pain001_xml(
        date(2026, 3, 1),
        datetime(2026, 3, 1, 20, 10, tzinfo=UTC),
        date(2026, 3, 2),
        Debtor("onecard", "6222000000000000001", "Bank"),
        [line],
    )
    assert check_pain001(xml) == []
    assert b"<Nm>Bus One</Nm>" in xml


def test_check_pain001_catches_a_wrong_control_sum() -> None:
    line = PayoutLine("bus-1", "Bus One", "Bank", "6222", 3, 600, 0, 0, 50, 3, 597)
    xml = pain001_xml(
        date(2026, 3, 1),
        datetime(2026, 3, 1, 20, 10, tzinfo=UTC),
        date(2026, 3, 2),
        Debtor("onecard", "6222000000000000001", "Bank"),
        [line],
    )
    broken = xml.replace(b"<CtrlSum>5.97</CtrlSum>", b"<CtrlSum>5.98</CtrlSum>", 1)
    assert broken != xml
    assert any("CtrlSum" in problem for problem in check_pain001(broken))


def test_settlement_csv_lists_every_participant() -> None:
    lines = [
        PayoutLine("bus-2", "B2", "Bank", "1", 0, 0, 0, 0, 50, 0, 0),
        PayoutLine("bus-1", "B1", "Bank", "2", 2, 400, 0, 0, 50, 2, 398),
    ]
    rows = list(csv.DictReader(io.StringIO(settlement_csv(date(2026, 3, 1), lines))))
    assert [row["participant_code"] for row in rows] == ["bus-1", "bus-2"]
    assert rows[0]["net_yuan"] == "3.98"


async def test_settling_a_day_twice_changes_nothing(world: World, tmp_path: Path) -> None:
    calendar = BusinessCalendar(ZoneInfo("Asia/Shanghai"), time(4, 0))
    tapped = datetime.now(UTC) - timedelta(days=2)
    day = calendar.business_day(tapped)
    await world.upload(
        [
            world.ride(ADULT, 300, at=tapped),
            world.ride(ADULT_2, 700, at=tapped),
            world.ride(SENIOR, 0, full_fare_fen=200, at=tapped),
        ]
    )
    await world.engine.clear_pending()
    now = datetime.now(UTC)
    async with world.ledger.transaction() as conn:
        first = await settle_day(conn, world.ledger, day, calendar=calendar, now=now, actor="t")
    assert not first.already_settled
    [line] = first.lines
    assert (line.fares_fen, line.subsidy_fen, line.gross_fen) == (1000, 200, 1200)
    assert line.commission_fen == 6  # 50 bp of 12 yuan
    assert line.net_fen == 1194
    assert await world.balance(books.payable("bus-1")) == 0
    assert await world.balance(books.REVENUE_COMMISSION) == 6
    async with world.ledger.transaction() as conn:
        again = await settle_day(conn, world.ledger, day, calendar=calendar, now=now, actor="t")
    assert again.already_settled
    assert again.lines == first.lines
    assert await world.balance(books.REVENUE_COMMISSION) == 6
    files = write_files(again, tmp_path, Debtor("onecard", "6222000000000000001", "Bank"))
    assert files.xml is not None and check_pain001(files.xml.read_bytes()) == []
    assert "bus-1" in files.csv.read_text()
    assert "subsidy:senior" in files.claims.read_text()

    # a late record of the settled day goes into the next open day, never into the old one
    await world.upload([world.ride(ADULT, 100, at=tapped)])
    await world.engine.clear_pending()
    async with world.ledger.transaction() as conn:
        still = await settle_day(conn, world.ledger, day, calendar=calendar, now=now, actor="t")
    assert still.lines == first.lines
    assert await world.balance(books.payable("bus-1")) == 100


async def test_an_open_day_is_not_settled(world: World) -> None:
    calendar = BusinessCalendar(ZoneInfo("Asia/Shanghai"), time(4, 0))
    now = datetime.now(UTC)
    async with world.ledger.transaction() as conn:
        with pytest.raises(DayNotClosed):
            await settle_day(
                conn,
                world.ledger,
                calendar.business_day(now),
                calendar=calendar,
                now=now,
                actor="t",
            )


async def test_operators_see_only_their_own_settlement(world: World, tmp_path: Path) -> None:
    from clearing.auth.models import Role
    from clearing.registry import service as registry_service
    from tests.clearing.apiharness import running_app

    calendar = BusinessCalendar(ZoneInfo("Asia/Shanghai"), time(4, 0))
    tapped = datetime.now(UTC) - timedelta(days=2)
    day = calendar.business_day(tapped)
    await world.upload([world.ride(ADULT, 300, at=tapped)])
    await world.engine.clear_pending()
    async with running_app(world.url, tmp_path) as (app, client):
        async with app.state.sessionmaker() as session:
            tokens = {}
            for role, subject in (
                (Role.FINANCE, "fred"),
                (Role.OPERATOR, "bus-1"),
                (Role.OPERATOR, "clinic-1"),
                (Role.RESIDENT, "resident-0"),
            ):
                token, _ = await registry_service.issue_token(
                    session, role, subject=subject, label="t"
                )
                tokens[subject] = {"Authorization": f"Bearer {token}"}
            await session.commit()
        path = f"/v1/settlements/{day}"
        assert (await client.get(path, headers=tokens["fred"])).status_code == 404
        assert (await client.post(path, headers=tokens["bus-1"])).status_code == 403
        settled = await client.post(path, headers=tokens["fred"])
        assert settled.status_code == 200, settled.text
        assert [line["net_fen"] for line in settled.json()["lines"]] == [300 - 2]
        # the API writes the same files as `onecard settle`, where the app's settings say
        folder = tmp_path / "settlement"
        written = sorted(path.name for path in folder.iterdir())
        assert (
            sorted(settled.json()["files"])
            == written
            == [
                f"settlement-{day}-claims.csv",
                f"settlement-{day}.csv",
                f"settlement-{day}.pain001.xml",
            ]
        )
        assert check_pain001((folder / f"settlement-{day}.pain001.xml").read_bytes()) == []
        assert "bus-1" in (folder / f"settlement-{day}.csv").read_text()
        again = await client.post(path, headers=tokens["fred"])
        assert again.json()["already_settled"] and again.json()["lines"] == settled.json()["lines"]
        own = (await client.get(path, headers=tokens["bus-1"])).json()
        assert [line["participant_code"] for line in own["lines"]] == ["bus-1"]
        other = (await client.get(path, headers=tokens["clinic-1"])).json()
        assert other["lines"] == [] and other["claims"] == []
        assert (await client.get(path, headers=tokens["resident-0"])).status_code == 403
        statement = f"{path}/statements/bus-1"
        assert (await client.get(statement, headers=tokens["clinic-1"])).status_code == 403
        rows = (await client.get(statement, headers=tokens["bus-1"])).json()
        assert rows[0]["fares_fen"] == 300 and rows[0]["route_id"] == "L1"
        today = calendar.business_day(datetime.now(UTC))
        early = await client.post(f"/v1/settlements/{today}", headers=tokens["fred"])
        assert early.status_code == 409
        assert early.json()["code"] == "business_day_not_closed"
        closed_early = await client.post(
            f"/v1/settlements/{today}", params={"force": "true"}, headers=tokens["fred"]
        )
        # closing early asks a second finance officer (tests/clearing/test_approvals.py)
        assert closed_early.status_code == 409, closed_early.text
        assert closed_early.json()["code"] == "second_person_required"
        report = await client.get(
            "/v1/subsidies", params={"from": str(day), "to": str(day)}, headers=tokens["fred"]
        )
        assert report.status_code == 200 and report.json() == []


@given(
    st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1)),
    st.integers(0, 23),
    st.integers(0, 59),
)
def test_business_day_matches_the_local_clock(moment: datetime, hour: int, minute: int) -> None:
    zone = ZoneInfo("Asia/Shanghai")
    calendar = BusinessCalendar(zone, time(hour, minute))
    at = moment.replace(tzinfo=UTC)
    local = at.astimezone(zone).replace(tzinfo=None)
    expected = (local - timedelta(hours=hour, minutes=minute)).date()
    assert calendar.business_day(at) == expected
    assert calendar.day_start(expected) <= at < calendar.day_end(expected)


async def test_a_day_with_nothing_cleared_settles_on_a_fresh_install(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A new installation (no card issued, no ledger opened yet) settles an empty day: no
    payouts, an empty instruction file, no pain.001; never a ledger error."""
    from clearing.auth.models import Role
    from clearing.registry import service as registry_service
    from tests.clearing.apiharness import running_app

    async with running_app(sqlite_url, tmp_path) as (app, client):
        async with app.state.sessionmaker() as session:
            token, _ = await registry_service.issue_token(
                session, Role.FINANCE, subject="fred", label="t"
            )
            await session.commit()
        day = date(2026, 1, 5)
        settled = await client.post(
            f"/v1/settlements/{day}", headers={"Authorization": f"Bearer {token}"}
        )
        assert settled.status_code == 200, settled.text
        assert settled.json()["lines"] == [] and settled.json()["claims"] == []
        assert sorted(settled.json()["files"]) == [
            f"settlement-{day}-claims.csv",
            f"settlement-{day}.csv",
        ]
