"""A used refresh token's grace: until when a parallel page load of the same browser may still
ride on its renewal (clearing/web), closed as soon as the new pair is seen.

Revision ID: 0009_refreshgrace
Revises: 0008_ledgerfast
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_refreshgrace"
down_revision = "0008_ledgerfast"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("resident_refresh_tokens") as batch:
        batch.add_column(sa.Column("grace_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("resident_refresh_tokens") as batch:
        batch.drop_column("grace_until")
