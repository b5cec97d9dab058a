"""Insight: the ledger of privacy budget spent (insight_releases) and the planner role.

Revision ID: 0004_insight
Revises: 0003_clearing
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_insight"
down_revision = "0003_clearing"
branch_labels = None
depends_on = None

ROLES_BEFORE = ("finance", "operator", "admin", "resident")
ROLES_AFTER = (*ROLES_BEFORE, "planner")


def _roles_check(roles: tuple[str, ...]) -> str:
    return "role IN (" + ", ".join(f"'{role}'" for role in roles) + ")"


def upgrade() -> None:
    op.create_table(
        "insight_releases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("k_riders_min", sa.Integer(), nullable=False),
        sa.Column("taps_per_rider_day_max", sa.Integer(), nullable=False),
        sa.Column("published", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_insight_releases"),
        sa.CheckConstraint("epsilon > 0", name="ck_insight_releases_epsilon"),
        sa.CheckConstraint("period_start <= period_end", name="ck_insight_releases_period"),
    )
    op.create_index(
        "ix_insight_releases_period", "insight_releases", ["period_start", "period_end"]
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint("ck_api_tokens_role", type_="check")
        batch.create_check_constraint("ck_api_tokens_role", _roles_check(ROLES_AFTER))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint("ck_api_tokens_role", type_="check")
        batch.create_check_constraint("ck_api_tokens_role", _roles_check(ROLES_BEFORE))
    op.drop_index("ix_insight_releases_period", table_name="insight_releases")
    op.drop_table("insight_releases")
