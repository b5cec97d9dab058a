"""Staff accounts (password sign-in for the finance console) and their wrong passwords; second-person approval requests (write-offs, refunds, early settlement).

Revision ID: 0006_console
Revises: 0005_ledgerperf
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_console"
down_revision = "0005_ledgerperf"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
PENDING = sa.text("state = 'pending'")


def _one_of(table: str, column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=f"ck_{table}_{column}")


def upgrade() -> None:
    op.create_table(
        "staff_accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=True),
        sa.Column("roles", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_login_at", TS, nullable=True),
        sa.Column("disabled_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_staff_accounts"),
        sa.UniqueConstraint("username", name="uq_staff_accounts_username"),
    )
    op.create_table(
        "staff_failed_logins",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_staff_failed_logins"),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["staff_accounts.id"],
            name="fk_staff_failed_logins_staff_id_staff_accounts",
        ),
    )
    op.create_index("ix_staff_failed_logins_staff", "staff_failed_logins", ["staff_id", "at"])
    op.create_table(
        "approval_requests",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("paid_by", sa.String(8), nullable=True),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("decision_note", sa.String(2000), nullable=True),
        sa.Column("outcome", sa.String(400), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_approval_requests"),
        _one_of(
            "approval_requests",
            "kind",
            ("write_off", "card_refund", "topup_refund", "early_settlement"),
        ),
        _one_of("approval_requests", "state", ("pending", "approved", "rejected")),
        sa.CheckConstraint(
            "decided_by IS NULL OR decided_by <> requested_by",
            name="ck_approval_requests_second_person",
        ),
    )
    op.create_index("ix_approval_requests_state", "approval_requests", ["state", "id"])
    # One open request per thing: a second "write off 17" waits for the first to be decided.
    op.create_index(
        "uq_approval_requests_pending_target",
        "approval_requests",
        ["kind", "target"],
        unique=True,
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_table("approval_requests")
    op.drop_table("staff_failed_logins")
    op.drop_table("staff_accounts")
