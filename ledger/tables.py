"""The ledger's SQLAlchemy Core tables: one schema for PostgreSQL and SQLite.

Alembic (clearing/migrations/versions/0001_ledger.py) creates them; this module only describes
them for queries. Ids are 128-bit, stored as UUID (native on PostgreSQL, CHAR(32) on SQLite; both
order like the unsigned integer). Transfers are insert-only: triggers refuse UPDATE and DELETE.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Uuid

from ledger.types import Transfer, TransferFlags

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ledgers = Table(
    "ledger_ledgers",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String(100), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("scale", Integer, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
)

accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("ledger", BigInteger, nullable=False),
    Column("code", Integer, nullable=False),
    Column("name", String(200), nullable=False, unique=True),
    Column("flags", Integer, nullable=False),
    Column("user_data_128", Uuid, nullable=True),
    Column("user_data_64", BigInteger, nullable=False),
    Column("user_data_32", BigInteger, nullable=False),
    Column("debits_pending", BigInteger, nullable=False),
    Column("debits_posted", BigInteger, nullable=False),
    Column("credits_pending", BigInteger, nullable=False),
    Column("credits_posted", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False, unique=True),
)

_TRANSFER_FIELDS = (
    ("id", Uuid),
    ("debit_account_id", Uuid),
    ("credit_account_id", Uuid),
    ("amount", BigInteger),
    ("pending_id", Uuid),
    ("reverses_id", Uuid),
    ("ledger", BigInteger),
    ("code", Integer),
    ("flags", Integer),
    ("timeout_s", Integer),
    ("user_data_128", Uuid),
    ("user_data_64", BigInteger),
    ("user_data_32", BigInteger),
    ("effective_at", BigInteger),
    ("timestamp", BigInteger),
)
_NULLABLE = {"pending_id", "reverses_id", "user_data_128", "effective_at"}

# Balances of both accounts right after the transfer: the per-entry history (balance before
# and after) and balance-as-of come from these columns, with no second table to write.
BALANCE_AFTER_COLUMNS = (
    "dr_debits_pending",
    "dr_debits_posted",
    "dr_credits_pending",
    "dr_credits_posted",
    "cr_debits_pending",
    "cr_debits_posted",
    "cr_credits_pending",
    "cr_credits_posted",
)
TRANSFER_COLUMNS = tuple(name for name, _ in _TRANSFER_FIELDS) + BALANCE_AFTER_COLUMNS

transfers = Table(
    "ledger_transfers",
    metadata,
    *[
        Column(name, kind, primary_key=(name == "id"), nullable=name in _NULLABLE)
        for name, kind in _TRANSFER_FIELDS
    ],
    *[Column(name, BigInteger, nullable=False) for name in BALANCE_AFTER_COLUMNS],
)

# Ids that failed for a reason that depends on the ledger's state, with their code and fields:
# a replay keeps failing the same way (permanent idempotency).
transfer_failures = Table(
    "ledger_transfer_failures",
    metadata,
    *[
        Column(name, kind, primary_key=(name == "id"), nullable=name in _NULLABLE)
        for name, kind in _TRANSFER_FIELDS
    ],
    Column("result", String(64), nullable=False),
)
FAILURE_COLUMNS = tuple(name for name, _ in _TRANSFER_FIELDS) + ("result",)

# Open pending transfers that carry a timeout; a row leaves when the pending transfer is
# posted, voided or expired. Small and mutable, unlike the transfers.
pending_deadlines = Table(
    "ledger_pending_deadlines",
    metadata,
    Column("pending_id", Uuid, primary_key=True),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

# One row: the last timestamp handed out, so timestamps are unique and strictly increasing.
clock = Table(
    "ledger_clock",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_ns", BigInteger, nullable=False),
)

ZERO_UUID = uuid.UUID(int=0)


def to_uuid(value: int) -> uuid.UUID:
    return uuid.UUID(int=value)


def to_uuid_or_none(value: int) -> uuid.UUID | None:
    return uuid.UUID(int=value) if value else None


def from_uuid(value: uuid.UUID | str | None) -> int:
    if value is None:
        return 0
    if isinstance(value, uuid.UUID):
        return value.int
    return uuid.UUID(value).int


TRANSFER_SELECT = (
    "id",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "pending_id",
    "reverses_id",
    "ledger",
    "code",
    "flags",
    "timeout_s",
    "user_data_128",
    "user_data_64",
    "user_data_32",
    "effective_at",
    "timestamp",
)


def transfer_from_row(row: Sequence[Any]) -> Transfer:
    """A stored transfer from a row whose first columns are `TRANSFER_SELECT`, in order."""
    return Transfer(
        id=from_uuid(row[0]),
        debit_account_id=from_uuid(row[1]),
        credit_account_id=from_uuid(row[2]),
        amount=row[3],
        pending_id=from_uuid(row[4]),
        reverses_id=from_uuid(row[5]),
        ledger=row[6],
        code=row[7],
        flags=TransferFlags(row[8]),
        timeout_s=row[9],
        user_data_128=from_uuid(row[10]),
        user_data_64=row[11],
        user_data_32=row[12],
        effective_at=row[13] or 0,
        timestamp=row[14],
    )


def transfer_values(t: Transfer) -> tuple[Any, ...]:
    """The `TRANSFER_SELECT` columns of a transfer, as the database stores them."""
    return (
        to_uuid(t.id),
        to_uuid(t.debit_account_id),
        to_uuid(t.credit_account_id),
        t.amount,
        to_uuid_or_none(t.pending_id),
        to_uuid_or_none(t.reverses_id),
        t.ledger,
        t.code,
        int(t.flags),
        t.timeout_s,
        to_uuid_or_none(t.user_data_128),
        t.user_data_64,
        t.user_data_32,
        t.effective_at or None,
        t.timestamp,
    )
