"""The bank statement tables (migration 0005_bank), on reconciliation's metadata: what the bank
said, kept as it was imported. Reconciliation writes these and never a ledger row.

- `bank_statements`: one row per imported statement, unique on (account, statement id); the
  SHA-256 of the file tells a repeated import (nothing new) from a changed one (refused).
- `bank_entries`: every entry, unique on (account, bank reference): an entry repeated on a later
  statement is stored once. A refused entry keeps its reason and no amount.
- `bank_entry_details`: the transaction details of an entry (several for a batch entry).
- `bank_fund_receipts`: the statement lines clearing booked as a fund's payment, with the
  ledger transfer that booked them (what matcher 7 reads, and matcher 5 leaves to it).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from clearing.db.base import BigId, UtcDateTime
from reconciliation.models import metadata

statements = Table(
    "bank_statements",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account", String(40), nullable=False),
    Column("statement_id", String(35), nullable=False),
    Column("message_id", String(35), nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=True),
    Column("imported_at", UtcDateTime(), nullable=False),
    Column("imported_by", String(100), nullable=False),
    Column("opening_fen", BigInteger(), nullable=True),
    Column("closing_fen", BigInteger(), nullable=True),
    Column("entries", Integer(), nullable=False),
    Column("refused", Integer(), nullable=False),
    Column("not_booked", Integer(), nullable=False),
    UniqueConstraint("account", "statement_id", name="uq_bank_statements_account"),
)

entries = Table(
    "bank_entries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("statement_pk", BigId, ForeignKey("bank_statements.id"), nullable=False),
    Column("entry_no", Integer(), nullable=False),
    Column("account", String(40), nullable=False),
    Column("bank_ref", String(35), nullable=False),
    Column("amount_fen", BigInteger(), nullable=True),  # None: refused
    Column("direction", String(8), nullable=True),
    Column("booking_date", Date(), nullable=True),
    Column("value_date", Date(), nullable=True),
    Column("reversal", Boolean(), nullable=False),
    Column("batch_ref", String(35), nullable=True),
    Column("info", Text(), nullable=True),
    Column("refusal", String(32), nullable=True),
    Column("refusal_detail", Text(), nullable=True),
    UniqueConstraint("account", "bank_ref", name="uq_bank_entries_account"),
    Index("ix_bank_entries_value_date", "value_date"),
)

details = Table(
    "bank_entry_details",
    metadata,
    Column("entry_id", BigId, ForeignKey("bank_entries.id"), primary_key=True),
    Column("detail_no", Integer(), primary_key=True),
    Column("amount_fen", BigInteger(), nullable=True),
    Column("end_to_end_id", String(35), nullable=True),
    Column("bank_ref", String(35), nullable=True),
    Column("batch_ref", String(35), nullable=True),
    Column("remittance", Text(), nullable=True),
    Column("counterparty_name", Text(), nullable=True),
    Column("counterparty_account", String(35), nullable=True),
)

fund_receipts = Table(
    "bank_fund_receipts",
    metadata,
    Column("line_ref", String(64), primary_key=True),  # the matcher's line reference
    Column("entry_id", BigId, ForeignKey("bank_entries.id"), nullable=False),
    Column("fund_account", String(64), nullable=False),  # insurer:<scheme> | subsidy:<scheme>
    Column("payer", String(32), nullable=False),  # the fund participant's code
    Column("amount_fen", BigInteger(), nullable=False),
    Column("value_date", Date(), nullable=False),
    Column("transfer_id", Uuid(), nullable=False),
    Column("remittance", Text(), nullable=True),
    Index("ix_bank_fund_receipts_fund_account", "fund_account"),
)
