"""The rows the engine writes, one named field per column (pure).

`ClearedRow` is one `cleared_taps` row; its fields are the table's columns in the table's order
(tests/clearing/test_engine_rows.py checks them against the SQLAlchemy table), so COPY and the
INSERT of other backends take it (the transfer ids as uuid.UUID there).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import NamedTuple


class ClearedRow(NamedTuple):
    """A posted tap as `cleared_taps` keeps it: the record, its decision and its transfers."""

    card_no: str
    purse: str
    card_counter: int
    tap_record_id: int
    terminal_id: str
    terminal_seq: int
    participant_code: str
    kind: str
    txn_type: int
    card_type: str
    route_id: str | None
    amount_fen: int
    balance_before_fen: int
    balance_after_fen: int
    full_fare_fen: int
    subsidy_fen: int
    subsidy_scheme: str | None
    insured_fen: int
    insurer_scheme: str | None
    visit_id: str | None
    load_id: str | None
    occurred_at: datetime
    business_day: date
    settlement_day: date
    outcome: str
    # Ledger transfer ids as 32 hex digits: asyncpg's COPY parses them in C (a uuid.UUID made
    # per record, and its `bytes` property read by the encoder, cost several times as much).
    transfer_id: str | None
    claim_transfer_id: str | None
    run_id: int
    cleared_at: datetime
