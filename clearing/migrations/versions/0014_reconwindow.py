"""Each reconciliation run records the ledger time its ledger check read: [since, until).

The nightly ledger check reads the entries of one window of ledger time instead of summing the
history. The window was the business day's own hours in posting time, which left entries unread:
those posted after a day's run but before the day's end (a run started mid-day, or before the
cut-off), and every entry before the first reconciled day. Now the windows chain: a day's window
starts where the last reconciled day before it ended (the first run of all starts at 0, the whole
history) and ends where the first reconciled day after it starts, or at what the ledger had
committed when the run began; a re-run of a day starts where its earlier run did. Both columns
are NULL on runs made before this revision; such runs set no bound, and the first run after
them starts at its own day's start (as they each read their own day), not at 0.
`ledger_accounts_swept`: the run also checked every account's balances against its last entry
(the weekly sweep).

Revision ID: 0014_reconwindow
Revises: 0013_dayindexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_reconwindow"
down_revision = "0013_dayindexes"
branch_labels = None
depends_on = None

_COLUMNS = ("ledger_since_ns", "ledger_until_ns")


def upgrade() -> None:
    with op.batch_alter_table("recon_runs") as batch:
        for name in _COLUMNS:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column(
                "ledger_accounts_swept", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("recon_runs") as batch:
        batch.drop_column("ledger_accounts_swept")
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
