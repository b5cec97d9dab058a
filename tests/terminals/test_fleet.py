"""The simulated fleet: buses on the sample feed's lines, offline and online, each with its journal."""

from __future__ import annotations

from datetime import date

from cardio.records import CardType
from cardio.softcard import SoftCard
from terminals.fleet import Fleet
from terminals.journal import RecordStatus

from .fake_clearing import FakeClearing


def test_a_day_of_the_fleet_reaches_the_back_office_exactly_once(issuer, sample_feed, tmp_path):
    types = [CardType.ADULT, CardType.STUDENT, CardType.SENIOR, CardType.DISABLED]
    cards = [
        SoftCard.issue(issuer, f"31000000000020{n:02d}", types[n % 4], balance_fen=20_000)
        for n in range(16)
    ]
    with FakeClearing() as server:
        fleet = Fleet(
            issuer,
            sample_feed,
            tmp_path / "fleet",
            buses=5,
            clearing_url=server.url,
            list_public_key=server.list_public_key,
            seed=42,
        )
        for terminal_id, public_key in fleet.credentials():
            server.register(terminal_id, public_key)
        day = fleet.simulate_day(cards, date(2026, 11, 30), offline_share=0.5)
        assert day.taps > 40 and day.paid == day.taps
        assert any(bus.offline_periods for bus in day.buses)
        records = fleet.records()
        assert sorted(records) == [bus.terminal_id for bus in fleet.buses]
        for terminal_id, journal_records in records.items():
            assert [r.terminal_seq for r in journal_records] == list(
                range(1, len(journal_records) + 1)
            )
            assert all(r.status is RecordStatus.COMPLETE for r in journal_records)
            on_server = sorted(seq for (t, seq) in server.state.records if t == terminal_id)
            assert on_server == [r.terminal_seq for r in journal_records]
        assert server.state.record_posts == sum(len(r) for r in records.values())
        charged = sum(r.amount_fen for rs in records.values() for r in rs)
        assert charged == day.fares_fen == sum(20_000 - card.balance_fen for card in cards)
        assert all(
            card.balance_fen == 20_000
            for card in cards
            if card.public_info.card_type is CardType.SENIOR
        )
        fleet.close()


def test_the_same_seed_gives_the_same_day(issuer, sample_feed, tmp_path):
    def run(where):
        cards = [
            SoftCard.issue(issuer, f"31000000000030{n:02d}", balance_fen=10_000) for n in range(6)
        ]
        fleet = Fleet(issuer, sample_feed, where, buses=3, seed=7)
        day = fleet.simulate_day(cards, date(2026, 11, 30))
        fleet.close()
        return [(b.taps, b.fares_fen) for b in day.buses]

    assert run(tmp_path / "a") == run(tmp_path / "b")


def test_torn_taps_in_the_fleet_are_neither_lost_nor_charged_twice(issuer, sample_feed, tmp_path):
    cards = [SoftCard.issue(issuer, f"31000000000040{n:02d}", balance_fen=50_000) for n in range(8)]
    with FakeClearing() as server:
        fleet = Fleet(
            issuer,
            sample_feed,
            tmp_path / "fleet",
            buses=2,
            clearing_url=server.url,
            list_public_key=server.list_public_key,
            seed=3,
        )
        for terminal_id, public_key in fleet.credentials():
            server.register(terminal_id, public_key)
        day = fleet.simulate_day(cards, date(2026, 11, 30), tear_share=0.25, taps_per_card=(4, 8))
        assert sum(b.torn for b in day.buses) > 3
        records = [r for rs in fleet.records().values() for r in rs]
        for card in cards:
            mine = [r for r in records if r.card_no == card.card_no]
            # every debit the card made is one record: complete, or grey if it never came back
            assert sorted(r.card_counter for r in mine) == list(range(card.offline_counter))
            assert sum(r.amount_fen for r in mine) == 50_000 - card.balance_fen
        for bus in fleet.buses:
            for record in bus.journal.records():
                assert (
                    server.state.records[(bus.terminal_id, record.terminal_seq)]["status"]
                    == record.status.value
                )
        fleet.close()
