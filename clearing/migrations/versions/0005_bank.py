"""Bank statements (camt.053) as imported: statements, entries, their details, and the lines
booked as a fund's payment (reconciliation/bank/models.py).

Revision ID: 0005_bank
Revises: 0005_recon
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_bank"
down_revision = "0005_recon"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bank_statements",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(40), nullable=False),
        sa.Column("statement_id", sa.String(35), nullable=False),
        sa.Column("message_id", sa.String(35), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(100), nullable=False),
        sa.Column("opening_fen", sa.BigInteger(), nullable=True),
        sa.Column("closing_fen", sa.BigInteger(), nullable=True),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("not_booked", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_bank_statements"),
        sa.UniqueConstraint("account", "statement_id", name="uq_bank_statements_account"),
    )
    op.create_table(
        "bank_entries",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("statement_pk", BigId, nullable=False),
        sa.Column("entry_no", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(40), nullable=False),
        sa.Column("bank_ref", sa.String(35), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("direction", sa.String(8), nullable=True),
        sa.Column("booking_date", sa.Date(), nullable=True),
        sa.Column("value_date", sa.Date(), nullable=True),
        sa.Column("reversal", sa.Boolean(), nullable=False),
        sa.Column("batch_ref", sa.String(35), nullable=True),
        sa.Column("info", sa.Text(), nullable=True),
        sa.Column("refusal", sa.String(32), nullable=True),
        sa.Column("refusal_detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_bank_entries"),
        sa.ForeignKeyConstraint(
            ["statement_pk"],
            ["bank_statements.id"],
            name="fk_bank_entries_statement_pk_bank_statements",
        ),
        sa.UniqueConstraint("account", "bank_ref", name="uq_bank_entries_account"),
        sa.CheckConstraint(
            "direction IS NULL OR direction IN ('credit', 'debit')",
            name="ck_bank_entries_direction",
        ),
        sa.CheckConstraint(
            "(refusal IS NULL) = (amount_fen IS NOT NULL AND amount_fen > 0)",
            name="ck_bank_entries_amount",
        ),
    )
    op.create_index("ix_bank_entries_value_date", "bank_entries", ["value_date"])
    op.create_table(
        "bank_entry_details",
        sa.Column("entry_id", BigId, nullable=False),
        sa.Column("detail_no", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("end_to_end_id", sa.String(35), nullable=True),
        sa.Column("bank_ref", sa.String(35), nullable=True),
        sa.Column("batch_ref", sa.String(35), nullable=True),
        sa.Column("remittance", sa.Text(), nullable=True),
        sa.Column("counterparty_name", sa.Text(), nullable=True),
        sa.Column("counterparty_account", sa.String(35), nullable=True),
        sa.PrimaryKeyConstraint("entry_id", "detail_no", name="pk_bank_entry_details"),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["bank_entries.id"], name="fk_bank_entry_details_entry_id_bank_entries"
        ),
    )
    op.create_table(
        "bank_fund_receipts",
        sa.Column("line_ref", sa.String(64), nullable=False),
        sa.Column("entry_id", BigId, nullable=False),
        sa.Column("fund_account", sa.String(64), nullable=False),
        sa.Column("payer", sa.String(32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("transfer_id", sa.Uuid(), nullable=False),
        sa.Column("remittance", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("line_ref", name="pk_bank_fund_receipts"),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["bank_entries.id"], name="fk_bank_fund_receipts_entry_id_bank_entries"
        ),
        sa.CheckConstraint("amount_fen > 0", name="ck_bank_fund_receipts_amount"),
    )
    op.create_index("ix_bank_fund_receipts_fund_account", "bank_fund_receipts", ["fund_account"])


def downgrade() -> None:
    op.drop_index("ix_bank_fund_receipts_fund_account", table_name="bank_fund_receipts")
    op.drop_table("bank_fund_receipts")
    op.drop_table("bank_entry_details")
    op.drop_index("ix_bank_entries_value_date", table_name="bank_entries")
    op.drop_table("bank_entries")
    op.drop_table("bank_statements")
