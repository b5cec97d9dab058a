"""Reconciliation: runs, match counts per check, breaks and their history (reconciliation/models).

Revision ID: 0005_recon
Revises: 0005_billing (chained on h/matchers; 0004_insight on its own branch)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_recon"
down_revision = "0005_billing"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STATUSES = ("open", "assigned", "explained", "resolved", "written_off")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.create_table(
        "recon_runs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("breaks_found", sa.Integer(), nullable=False),
        sa.Column("breaks_new", sa.Integer(), nullable=False),
        sa.Column("breaks_closed", sa.Integer(), nullable=False),
        sa.Column("breaks_open", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recon_runs"),
        sa.CheckConstraint(
            _in("state", ("running", "finished", "failed")), name="ck_recon_runs_state"
        ),
    )
    op.create_index("ix_recon_runs_business_day", "recon_runs", ["business_day"])
    op.create_table(
        "recon_matches",
        sa.Column("run_id", BigId, nullable=False),
        sa.Column("check_name", sa.String(32), nullable=False),
        sa.Column("matched", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("breaks", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "check_name", name="pk_recon_matches"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["recon_runs.id"], name="fk_recon_matches_run_id_recon_runs"
        ),
        sa.CheckConstraint("0 <= matched AND matched <= total", name="ck_recon_matches_counts"),
    )
    op.create_table(
        "recon_breaks",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("check_name", sa.String(32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("counterpart", sa.String(100), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(100), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_id", BigId, nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_recon_breaks"),
        sa.UniqueConstraint("kind", "key", name="uq_recon_breaks_kind_key"),
        sa.CheckConstraint(_in("status", STATUSES), name="ck_recon_breaks_status"),
        sa.CheckConstraint(_in("scope", ("day", "standing")), name="ck_recon_breaks_scope"),
    )
    op.create_index("ix_recon_breaks_status_kind", "recon_breaks", ["status", "kind"])
    op.create_index("ix_recon_breaks_business_day", "recon_breaks", ["business_day"])
    op.create_table(
        "recon_break_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("break_id", BigId, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("run_id", BigId, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_recon_break_events"),
        sa.ForeignKeyConstraint(
            ["break_id"], ["recon_breaks.id"], name="fk_recon_break_events_break_id_recon_breaks"
        ),
    )
    op.create_index("ix_recon_break_events_break_id", "recon_break_events", ["break_id"])


def downgrade() -> None:
    op.drop_index("ix_recon_break_events_break_id", table_name="recon_break_events")
    op.drop_table("recon_break_events")
    op.drop_index("ix_recon_breaks_business_day", table_name="recon_breaks")
    op.drop_index("ix_recon_breaks_status_kind", table_name="recon_breaks")
    op.drop_table("recon_breaks")
    op.drop_table("recon_matches")
    op.drop_index("ix_recon_runs_business_day", table_name="recon_runs")
    op.drop_table("recon_runs")
