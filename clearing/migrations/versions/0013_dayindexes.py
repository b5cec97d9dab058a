"""Tap records and cleared taps indexed by when they happened, for the nightly reconciliation.

The nightly checks read one business day of `tap_records` and `cleared_taps` (by `occurred_at`);
with no index on it, every night read the whole history: a day of 1,000,000 taps took 2.2x as
long to reconcile once three earlier days were in the tables (bench/reconcile.py
--history-days), and it grows by a day's scan every day.

On PostgreSQL the index is a BRIN (block ranges): rows arrive roughly in the order they happened
(terminals upload within hours, at most days), so each range of 128 pages covers a short span of
time; it costs a few pages per million rows and next to nothing per row written, where a
b-tree would cost ingest and clearing a third of their COPY speed (bench/ledger.py's figures for
the ledger's b-trees). `autosummarize` keeps the ranges of a filling table summarised; a range
not yet summarised is always read, so the index never hides a row. Building it reads each table
once and blocks writes to it meanwhile: on a large database, run the upgrade in a quiet hour.
On SQLite (the embedded default) a plain index.

Revision ID: 0013_dayindexes
Revises: 0012_loadplans
"""

from __future__ import annotations

from alembic import op

revision = "0013_dayindexes"
down_revision = "0012_loadplans"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_tap_records_occurred_at", "tap_records"),
    ("ix_cleared_taps_occurred_at", "cleared_taps"),
)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, table in _INDEXES:
        if postgresql:
            op.execute(
                f"CREATE INDEX {name} ON {table} USING brin (occurred_at) WITH (autosummarize = on)"
            )
        else:
            op.create_index(name, table, ["occurred_at"])


def downgrade() -> None:
    for name, table in _INDEXES:
        op.drop_index(name, table_name=table)
