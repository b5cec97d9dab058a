"""The upload body and its acknowledgement (docs/terminal-protocol.md, "Upload a batch")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from clearing.http.bodies import JSON_ENUM, Instant, JsonInt, RequestModel
from clearing.records import RecordStatus, TapKind

RECORDS_PER_BATCH_MAX = 5000
BATCH_BYTES_MAX = 4 * 1024 * 1024
U32_MAX = 2**32 - 1

BatchId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
CardNo = Annotated[str, StringConstraints(pattern=r"^[0-9]{16}$")]
Tac = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{8}$")]
Short = Annotated[str, StringConstraints(max_length=64)]
CardTypeName = Annotated[str, StringConstraints(pattern=r"^(adult|student|senior|disabled)$")]


class TapRecordIn(RequestModel):
    """One journal record. Checked for shape only: what it means is the engine's job. Every
    field of the protocol and nothing else: the raw body is stored, and a key the service
    ignored could mean something to whoever reads it next."""

    kind: Annotated[TapKind, JSON_ENUM]
    status: Annotated[RecordStatus, JSON_ENUM]
    terminal_seq: JsonInt = Field(ge=1, le=U32_MAX)
    card_no: CardNo
    card_counter: JsonInt = Field(ge=0, le=65535)
    txn_type: JsonInt = Field(ge=0, le=255)
    amount_fen: JsonInt = Field(ge=0, le=U32_MAX)
    balance_before_fen: JsonInt = Field(ge=0, le=U32_MAX)
    balance_after_fen: JsonInt = Field(ge=0, le=U32_MAX)
    occurred_at: Instant
    tac: Tac | None
    card_type: CardTypeName
    rider_category: Short
    full_fare_fen: JsonInt = Field(ge=0, le=U32_MAX)
    fare_rule: Short
    route_id: Short | None = None
    stop_id: Short | None = None
    insured_fen: JsonInt = Field(default=0, ge=0, le=U32_MAX)
    visit_id: Short | None = None
    load_id: Short | None = None
    offline_fallback: bool = False
    deny_list_version: JsonInt = Field(ge=0, le=2**62)
    action_list_version: JsonInt = Field(ge=0, le=2**62)


class StagedRow(NamedTuple):
    """One `tap_records` row as ingestion stages it: every column but the id, in the table's
    order (tests/clearing/test_engine_rows.py checks them), so COPY takes `_fields` as its
    column list."""

    batch_pk: int
    record_index: int
    terminal_id: str
    kind: str
    status: str
    terminal_seq: int
    card_no: str
    card_counter: int
    txn_type: int
    amount_fen: int
    balance_before_fen: int
    balance_after_fen: int
    occurred_at: datetime
    tac: str | None
    card_type: str
    rider_category: str
    full_fare_fen: int
    fare_rule: str
    route_id: str | None
    stop_id: str | None
    insured_fen: int
    visit_id: str | None
    load_id: str | None
    offline_fallback: bool
    deny_list_version: int
    action_list_version: int
    state: str
    quarantine_reason: str | None
    received_at: datetime
    state_changed_at: datetime


class BatchUpload(RequestModel):
    batch_id: BatchId
    records: list[TapRecordIn] = Field(max_length=RECORDS_PER_BATCH_MAX)


class SequenceGapOut(BaseModel):
    from_seq: int
    to_seq: int


class BatchAck(BaseModel):
    batch_id: str
    records: int
    duplicate: bool
    received_at: datetime
    sequence_gaps: list[SequenceGapOut]


class BatchOut(BaseModel):
    """A stored batch as staff see it (without the raw body)."""

    model_config = ConfigDict(from_attributes=True)

    terminal_id: str
    batch_id: str
    body_sha256: str
    record_count: int
    amount_fen_total: int
    received_at: datetime
