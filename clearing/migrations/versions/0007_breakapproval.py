"""Approval requests may ask to write off a reconciliation break (kind break_write_off).

Revision ID: 0007_breakapproval
Revises: 0006_console
"""

from __future__ import annotations

from alembic import op

revision = "0007_breakapproval"
down_revision = "0006_console"
branch_labels = None
depends_on = None

KINDS = ("write_off", "card_refund", "topup_refund", "early_settlement")
NAME = "ck_approval_requests_kind"


def _kinds(kinds: tuple[str, ...]) -> None:
    quoted = ", ".join(f"'{kind}'" for kind in kinds)
    # SQLite cannot alter a constraint: batch mode copies the table (its indexes included).
    with op.batch_alter_table("approval_requests") as batch:
        batch.drop_constraint(NAME, type_="check")
        batch.create_check_constraint(NAME, f"kind IN ({quoted})")


def upgrade() -> None:
    _kinds((*KINDS, "break_write_off"))


def downgrade() -> None:
    op.execute("DELETE FROM approval_requests WHERE kind = 'break_write_off'")
    _kinds(KINDS)
