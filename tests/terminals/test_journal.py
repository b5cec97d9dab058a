"""The offline journal: append-only, durable, no sequence holes, frozen upload batches."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from terminals.errors import JournalError
from terminals.journal import Journal, RecordKind, RecordStatus, TapRecord

from .conftest import TERMINAL_ID

DRAFT = TapRecord(
    RecordKind.PURCHASE,
    RecordStatus.GREY,
    0,
    "3100000000000001",
    4,
    9,
    200,
    1000,
    800,
    datetime(2026, 11, 30, 0, 0, tzinfo=UTC),
    None,
    "adult",
    "adult",
    200,
    "urban:urban_flat",
    "1",
    "old_town",
)


def tap(journal: Journal, seq: int, complete: bool = True, card_counter: int = 4) -> TapRecord:
    draft = replace(DRAFT, card_counter=card_counter)
    intent = journal.append_intent(draft)
    record = replace(draft, terminal_seq=seq)
    journal.append_grey(intent, record)
    if complete:
        journal.complete(seq, b"\xde\xad\xbe\xef", 800)
    return record


def test_records_cannot_be_updated_or_deleted(journal: Journal):
    tap(journal, 1)
    conn = sqlite3.connect(journal.path)
    for statement in (
        "UPDATE records SET card_no = 'x'",
        "DELETE FROM records",
        "DELETE FROM completions",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(statement)
    conn.close()
    assert journal.record(1).tac == "DEADBEEF"


def test_a_sequence_number_is_stored_once(journal: Journal):
    tap(journal, 1)
    with pytest.raises(sqlite3.IntegrityError):
        tap(journal, 1)


def test_journal_is_in_wal_mode_with_full_sync(journal: Journal):
    conn = journal._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_serial_lost_between_sam_and_journal_is_filled_from_its_intent(journal: Journal):
    tap(journal, 1)
    journal.append_intent(replace(DRAFT, card_counter=5))  # power cut after the SAM's serial 2
    tap(journal, 3, card_counter=5)  # the next tap sees serial 3
    assert journal.sequence_holes() == []
    filled = journal.record(2)
    assert filled.status is RecordStatus.GREY and journal.outcome(2) == "not_debited"


def test_reconcile_fills_up_to_the_sams_last_serial(journal: Journal):
    tap(journal, 1)
    journal.append_intent(DRAFT)
    assert journal.reconcile(2) == 1
    assert journal.reconcile(2) == 0
    assert [r.terminal_seq for r in journal.records()] == [1, 2]


def test_batches_are_frozen_and_resent_byte_for_byte_until_acknowledged(journal: Journal):
    for seq in range(1, 6):
        tap(journal, seq)
    first = journal.next_batch(records_max=3)
    assert first.batch_id == f"{TERMINAL_ID}-00000001" and first.records == 3
    tap(journal, 6)
    assert journal.next_batch(records_max=3) == first  # not acknowledged: the same bytes again
    journal.acknowledge(first, duplicate=False)
    second = journal.next_batch(records_max=3)
    assert [r["terminal_seq"] for r in json.loads(second.body)["records"]] == [4, 5, 6]
    journal.acknowledge(second, duplicate=False)
    assert journal.next_batch() is None
    assert journal.stats().uploaded == 6 and journal.stats().pending_upload == 0


def test_torn_taps_wait_for_their_card_then_upload_as_grey(journal: Journal):
    tap(journal, 1, complete=False)
    now = datetime.now(UTC)
    assert journal.next_batch(grey_hold=timedelta(hours=1), now=now) is None
    batch = journal.next_batch(grey_hold=timedelta(hours=1), now=now + timedelta(hours=2))
    (record,) = json.loads(batch.body)["records"]
    assert record["status"] == "grey" and record["tac"] is None
    journal.acknowledge(batch, duplicate=False)
    journal.complete(1, b"\x01\x02\x03\x04", 800)  # the card came back later
    again = journal.next_batch(now=now + timedelta(hours=3))
    assert json.loads(again.body)["records"][0]["status"] == "complete"


def test_wire_record_has_every_protocol_field(journal: Journal):
    tap(journal, 1)
    wire = json.loads(journal.next_batch().body)["records"][0]
    assert set(wire) == {
        "kind",
        "status",
        "terminal_seq",
        "card_no",
        "card_counter",
        "txn_type",
        "amount_fen",
        "balance_before_fen",
        "balance_after_fen",
        "occurred_at",
        "tac",
        "card_type",
        "rider_category",
        "full_fare_fen",
        "fare_rule",
        "route_id",
        "stop_id",
        "insured_fen",
        "visit_id",
        "load_id",
        "offline_fallback",
        "deny_list_version",
        "action_list_version",
    }
    assert wire["occurred_at"] == "2026-11-30T00:00:00Z" and wire["tac"] == "DEADBEEF"


def test_a_journal_belongs_to_one_terminal(tmp_path: Path):
    Journal(tmp_path / "j.db", TERMINAL_ID).close()
    with pytest.raises(JournalError):
        Journal(tmp_path / "j.db", "000001000099")


def test_batches_stay_within_their_byte_limit(journal: Journal):
    for seq in range(1, 9):
        tap(journal, seq, card_counter=seq)
    one = len(journal.next_batch(records_max=1).body)
    journal.acknowledge(journal.next_batch(records_max=1), duplicate=False)
    limit = 3 * one + 200  # three records fit, seven (all that is due) do not
    assert limit >= 1024
    first = journal.next_batch(records_max=10, bytes_max=limit)
    assert len(first.body) <= limit and first.records == 3
    assert [r["terminal_seq"] for r in json.loads(first.body)["records"]] == [2, 3, 4]
    journal.acknowledge(first, duplicate=False)
    assert journal.next_batch(records_max=10).records == 4  # the rest, in the next batch


def test_long_rule_texts_are_shortened_distinctly_to_the_protocols_64():
    from terminals.journal import SHORT_TEXT_MAX, short_text

    a, b = "urban:" + "x" * 100, "urban:" + "x" * 99 + "y"
    assert short_text("urban:urban_flat") == "urban:urban_flat"
    assert len(short_text(a)) == SHORT_TEXT_MAX and short_text(a) != short_text(b)


@pytest.mark.parametrize("what", ["folder", "not a database"])
def test_a_journal_path_that_holds_no_journal_is_a_journal_error(tmp_path: Path, what: str) -> None:
    # It left as "unexpected OperationalError/DatabaseError" from `terminal journal|run|simulate`.
    path = tmp_path / "journal.db"
    if what == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"garbage, not SQLite" * 100)
    with pytest.raises(JournalError, match=f"cannot open the journal {path}"):
        Journal(path, TERMINAL_ID)
