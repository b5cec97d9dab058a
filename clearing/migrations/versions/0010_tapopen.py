"""The records clearing is not done with, in a table of their own (issue 14).

`tap_open` holds one narrow row per `tap_records` row in state `received` (waiting to be
cleared) or `quarantined` (held): its id, its state and, on PostgreSQL, its card's shard
(clearing/engine/shards.py; 0 on SQLite, which clears without shards). Triggers on
`tap_records` keep it so for every writer (ingest, the engine, quarantine releases and
write-offs, bulk loads): a row enters when a record is stored or set to an open state and
leaves when it is cleared or written off. The engine's "next received records" and every
quarantine listing read it instead of the index `ix_tap_records_state_id`, which is dropped.

Why: `state` was in that index, so every state change (a million a million-tap day) was a
non-HOT update: a new row version on another page and a new entry in all five indexes of
`tap_records`. With `state` in no index and half of each page kept free (fillfactor 45: a
chunk changes every row of a page in one transaction, so each needs room for its new
version), the update stays on its page and touches no index (measured on 40,000 records of a
200,000-record table: 698 ms -> 125 ms). Insert-side cost: a narrow row and two small index
entries per record, against one dropped index entry; pages written before keep their fill.

Revision ID: 0010_tapopen
Revises: 0009_refreshgrace
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_tapopen"
down_revision = "0009_refreshgrace"
branch_labels = None
depends_on = None

SHARDS = 32  # clearing/engine/shards.py: migrations keep their own copy of what they use
OPEN = "('received', 'quarantined')"
_PG_SHARD = f"(hashtext(card_no) & 2147483647) % {SHARDS}"

_PG = [
    f"""CREATE FUNCTION tap_open_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tap_open (tap_record_id, state, shard)
        SELECT id, state, {_PG_SHARD} FROM new_rows WHERE state IN {OPEN};
    RETURN NULL;
END $$""",
    # The ids go to the index as one array (a join on the transition table, of unknown size
    # to the planner, could scan the whole of tap_open).
    f"""CREATE FUNCTION tap_open_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tap_open WHERE tap_record_id = ANY (ARRAY(
        SELECT id FROM new_rows WHERE state NOT IN {OPEN}));
    INSERT INTO tap_open (tap_record_id, state, shard)
        SELECT id, state, {_PG_SHARD} FROM new_rows WHERE state IN {OPEN}
        ON CONFLICT (tap_record_id) DO UPDATE SET state = EXCLUDED.state
        WHERE tap_open.state IS DISTINCT FROM EXCLUDED.state;
    RETURN NULL;
END $$""",
    """CREATE FUNCTION tap_open_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tap_open WHERE tap_record_id = ANY (ARRAY(SELECT id FROM old_rows));
    RETURN NULL;
END $$""",
    "CREATE TRIGGER tap_records_open_inserted AFTER INSERT ON tap_records"
    " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tap_open_inserted()",
    "CREATE TRIGGER tap_records_open_updated AFTER UPDATE ON tap_records"
    " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tap_open_updated()",
    "CREATE TRIGGER tap_records_open_deleted AFTER DELETE ON tap_records"
    " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tap_open_deleted()",
    f"INSERT INTO tap_open (tap_record_id, state, shard)"
    f" SELECT id, state, {_PG_SHARD} FROM tap_records WHERE state IN {OPEN}",
    "ALTER TABLE tap_records SET (fillfactor = 45)",
]
_PG_DOWN = [
    "DROP TRIGGER tap_records_open_inserted ON tap_records",
    "DROP TRIGGER tap_records_open_updated ON tap_records",
    "DROP TRIGGER tap_records_open_deleted ON tap_records",
    "DROP FUNCTION tap_open_inserted()",
    "DROP FUNCTION tap_open_updated()",
    "DROP FUNCTION tap_open_deleted()",
    "ALTER TABLE tap_records RESET (fillfactor)",
]

_SQLITE = [
    f"""CREATE TRIGGER tap_records_open_inserted AFTER INSERT ON tap_records
WHEN NEW.state IN {OPEN}
BEGIN
    INSERT INTO tap_open (tap_record_id, state, shard) VALUES (NEW.id, NEW.state, 0);
END""",
    f"""CREATE TRIGGER tap_records_open_updated AFTER UPDATE OF state ON tap_records
BEGIN
    DELETE FROM tap_open WHERE tap_record_id = OLD.id;
    INSERT INTO tap_open (tap_record_id, state, shard)
        SELECT NEW.id, NEW.state, 0 WHERE NEW.state IN {OPEN};
END""",
    """CREATE TRIGGER tap_records_open_deleted AFTER DELETE ON tap_records
BEGIN
    DELETE FROM tap_open WHERE tap_record_id = OLD.id;
END""",
    f"INSERT INTO tap_open (tap_record_id, state, shard)"
    f" SELECT id, state, 0 FROM tap_records WHERE state IN {OPEN}",
]
_SQLITE_DOWN = [
    "DROP TRIGGER tap_records_open_inserted",
    "DROP TRIGGER tap_records_open_updated",
    "DROP TRIGGER tap_records_open_deleted",
]


def upgrade() -> None:
    op.create_table(
        "tap_open",
        sa.Column("tap_record_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tap_record_id", name="pk_tap_open"),
        sa.CheckConstraint(f"state IN {OPEN}", name="ck_tap_open_state"),
    )
    op.create_index("ix_tap_open_state_tap_record_id", "tap_open", ["state", "tap_record_id"])
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in _PG if postgresql else _SQLITE:
        op.execute(statement)
    op.drop_index("ix_tap_records_state_id", table_name="tap_records")


def downgrade() -> None:
    op.create_index("ix_tap_records_state_id", "tap_records", ["state", "id"])
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in _PG_DOWN if postgresql else _SQLITE_DOWN:
        op.execute(statement)
    op.drop_index("ix_tap_open_state_tap_record_id", table_name="tap_open")
    op.drop_table("tap_open")
