"""One tap record: the rows the code builds name the very columns of their tables."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table

from clearing.engine.decide import Purse, Tap, record_consistent
from clearing.engine.models import ClearedTap
from clearing.engine.repository import TAP_FIELDS
from clearing.engine.rows import ClearedRow
from clearing.ingest.models import TapRecord
from clearing.ingest.schemas import StagedRow
from clearing.quarantine.service import QuarantinedRecord
from clearing.records import RecordStatus, TapKind

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _columns(model: type) -> tuple[str, ...]:
    return tuple(column.name for column in cast(Table, model.__table__).columns)


def test_a_cleared_row_is_the_cleared_taps_table_in_its_order() -> None:
    assert ClearedRow._fields == _columns(ClearedTap)


def test_a_staged_row_is_every_tap_records_column_but_the_id_in_order() -> None:
    assert StagedRow._fields == tuple(c for c in _columns(TapRecord) if c != "id")


def test_the_engine_reads_tap_fields_that_are_stored_columns() -> None:
    assert set(TAP_FIELDS) <= set(_columns(TapRecord))
    assert TAP_FIELDS[0] == "id"


def test_the_quarantine_lists_a_records_own_fields_under_the_engines_names() -> None:
    listed = [f.name for f in fields(QuarantinedRecord)]
    assert set(listed) - {"reason", "state"} <= set(TAP_FIELDS)
    tap_types = {f.name: f.type for f in fields(Tap)}
    for f in fields(QuarantinedRecord):
        if f.name in tap_types:
            assert f.type == tap_types[f.name], f.name


def test_a_tap_read_back_holds_its_kind_and_status_as_members() -> None:
    row = (1, "T1", "load", "complete", 1, "1" * 16, 1, 2, 100, 0, 100, NOW, "0A0B0C0D")
    tap = Tap(*row)
    assert tap.kind is TapKind.LOAD and tap.status is RecordStatus.COMPLETE
    assert tap.purse is Purse.ONLINE
    # SQLite keeps whatever it was given: a kind the protocol does not know is never posted.
    odd = Tap(*row[:2], "refund", *row[3:])
    assert odd.kind == "refund" and not record_consistent(odd)
