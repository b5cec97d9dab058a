"""Bills: bill payments, receipts and the outbox of biller confirmations.

Revision ID: 0005_billing
Revises: 0005_mobile (chained on h/matchers; 0004_insight on its own branch)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_billing"
down_revision = "0005_mobile"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _one_of(table: str, column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=f"ck_{table}_{column}")


def upgrade() -> None:
    op.create_table(
        "bill_payments",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("requester", sa.String(80), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("resident_id", sa.String(64), nullable=True),
        sa.Column("biller_code", sa.String(32), nullable=False),
        sa.Column("account_no", sa.String(32), nullable=False),
        sa.Column("bill_id", sa.String(64), nullable=False),
        sa.Column("period", sa.String(32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("card_no", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("paid_bill_key", sa.String(100), nullable=True),
        sa.Column("paid_from_account", sa.String(128), nullable=True),
        sa.Column("external_ref", sa.String(128), nullable=True),
        sa.Column("transfer_id", sa.String(32), nullable=True),
        sa.Column("settlement_day", sa.Date(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("paid_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_bill_payments"),
        sa.UniqueConstraint(
            "requester", "request_id", name="uq_bill_payments_requester_request_id"
        ),
        sa.UniqueConstraint("paid_bill_key", name="uq_bill_payments_paid_bill_key"),
        sa.UniqueConstraint("external_ref", name="uq_bill_payments_external_ref"),
        sa.CheckConstraint("amount_fen > 0", name="ck_bill_payments_amount_positive"),
        _one_of("bill_payments", "channel", ("stripe", "counter")),
        _one_of("bill_payments", "status", ("started", "paid")),
    )
    op.create_index("ix_bill_payments_resident_id", "bill_payments", ["resident_id"])
    op.create_index("ix_bill_payments_biller_code", "bill_payments", ["biller_code"])
    op.create_index("ix_bill_payments_settlement_day", "bill_payments", ["settlement_day"])
    op.create_table(
        "bill_receipts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("payment_id", sa.String(40), nullable=False),
        sa.Column("resident_id", sa.String(64), nullable=True),
        sa.Column("biller_code", sa.String(32), nullable=False),
        sa.Column("biller_name", sa.String(200), nullable=False),
        sa.Column("account_no", sa.String(32), nullable=False),
        sa.Column("bill_id", sa.String(64), nullable=False),
        sa.Column("period", sa.String(32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("paid_from", sa.String(128), nullable=False),
        sa.Column("paid_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_bill_receipts"),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["bill_payments.id"], name="fk_bill_receipts_payment_id_bill_payments"
        ),
        sa.UniqueConstraint("payment_id", name="uq_bill_receipts_payment_id"),
    )
    op.create_index("ix_bill_receipts_resident_id", "bill_receipts", ["resident_id"])
    op.create_table(
        "bill_confirmations",
        sa.Column("payment_id", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("biller_ack", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("dispatched_at", TS, nullable=True),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("payment_id", name="pk_bill_confirmations"),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["bill_payments.id"],
            name="fk_bill_confirmations_payment_id_bill_payments",
        ),
        _one_of("bill_confirmations", "state", ("pending", "acknowledged")),
    )


def downgrade() -> None:
    op.drop_table("bill_confirmations")
    op.drop_index("ix_bill_receipts_resident_id", table_name="bill_receipts")
    op.drop_table("bill_receipts")
    op.drop_index("ix_bill_payments_settlement_day", table_name="bill_payments")
    op.drop_index("ix_bill_payments_biller_code", table_name="bill_payments")
    op.drop_index("ix_bill_payments_resident_id", table_name="bill_payments")
    op.drop_table("bill_payments")
