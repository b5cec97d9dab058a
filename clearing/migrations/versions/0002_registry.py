"""Registry, authentication, batch ingestion and the terminal lists.

Revision ID: 0002_registry
Revises: 0001_ledger
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_registry"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _one_of(table: str, column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=f"ck_{table}_{column}")


def upgrade() -> None:
    op.create_table(
        "participants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("commission_bp", sa.Integer(), nullable=False),
        sa.Column("bank_account", sa.String(40), nullable=False),
        sa.Column("bank_name", sa.String(200), nullable=False),
        sa.Column("scheme", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_participants"),
        sa.UniqueConstraint("code", name="uq_participants_code"),
        _one_of(
            "participants",
            "kind",
            ("bus_operator", "clinic", "utility", "insurer", "subsidy_fund"),
        ),
        _one_of("participants", "status", ("active", "suspended")),
        sa.CheckConstraint(
            "commission_bp >= 0 AND commission_bp <= 10000", name="ck_participants_commission_bp"
        ),
    )
    op.create_table(
        "terminals",
        sa.Column("terminal_id", sa.String(12), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("line", sa.String(64), nullable=True),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("seq_high", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("terminal_id", name="pk_terminals"),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name="fk_terminals_participant_id_participants",
        ),
        _one_of("terminals", "kind", ("bus", "clinic", "kiosk", "utility")),
        _one_of("terminals", "status", ("active", "suspended", "retired")),
    )
    op.create_index("ix_terminals_participant_id", "terminals", ["participant_id"])
    op.create_table(
        "cards",
        sa.Column("card_no", sa.String(16), nullable=False),
        sa.Column("card_type", sa.String(16), nullable=False),
        sa.Column("holder_id", sa.String(64), nullable=False),
        sa.Column("holder_name", sa.String(200), nullable=False),
        sa.Column("scheme", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("deposit_fen", sa.BigInteger(), nullable=False),
        sa.Column("replaced_by", sa.String(16), nullable=True),
        sa.Column("replaces", sa.String(16), nullable=True),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("status_changed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("card_no", name="pk_cards"),
        _one_of("cards", "card_type", ("adult", "student", "senior", "disabled")),
        _one_of("cards", "status", ("active", "lost", "blocked", "replaced", "refunded")),
        sa.CheckConstraint("deposit_fen >= 0", name="ck_cards_deposit_fen"),
    )
    op.create_index("ix_cards_holder_id", "cards", ["holder_id"])
    op.create_table(
        "card_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("card_no", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("transfer_ids", sa.Text(), nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_card_events"),
        sa.ForeignKeyConstraint(
            ["card_no"], ["cards.card_no"], name="fk_card_events_card_no_cards"
        ),
    )
    op.create_index("ix_card_events_card_no", "card_events", ["card_no"])
    op.create_table(
        "card_replacements",
        sa.Column("old_card_no", sa.String(16), nullable=False),
        sa.Column("new_card_no", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("deny_list_version", sa.BigInteger(), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("moved_at", TS, nullable=True),
        sa.Column("moved_fen", sa.BigInteger(), nullable=True),
        sa.Column("load_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("old_card_no", name="pk_card_replacements"),
        sa.UniqueConstraint("new_card_no", name="uq_card_replacements_new_card_no"),
        sa.ForeignKeyConstraint(
            ["old_card_no"], ["cards.card_no"], name="fk_card_replacements_old_card_no_cards"
        ),
        sa.ForeignKeyConstraint(
            ["new_card_no"], ["cards.card_no"], name="fk_card_replacements_new_card_no_cards"
        ),
        _one_of("card_replacements", "state", ("waiting", "done")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("participant_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_sha256", name="uq_api_tokens_token_sha256"),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name="fk_api_tokens_participant_id_participants",
        ),
        _one_of("api_tokens", "role", ("finance", "operator", "admin", "resident")),
    )
    op.create_table(
        "terminal_nonces",
        sa.Column("terminal_id", sa.String(12), nullable=False),
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.Column("seen_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("terminal_id", "nonce", name="pk_terminal_nonces"),
        sa.ForeignKeyConstraint(
            ["terminal_id"],
            ["terminals.terminal_id"],
            name="fk_terminal_nonces_terminal_id_terminals",
        ),
    )
    op.create_index("ix_terminal_nonces_seen_at", "terminal_nonces", ["seen_at"])
    op.create_table(
        "ingest_batches",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("terminal_id", sa.String(12), nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("amount_fen_total", sa.BigInteger(), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ingest_batches"),
        sa.UniqueConstraint(
            "terminal_id", "batch_id", name="uq_ingest_batches_terminal_id_batch_id"
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"],
            ["terminals.terminal_id"],
            name="fk_ingest_batches_terminal_id_terminals",
        ),
    )
    op.create_index("ix_ingest_batches_received_at", "ingest_batches", ["received_at"])
    op.create_table(
        "tap_records",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("batch_pk", BIG_ID, nullable=False),
        sa.Column("record_index", sa.Integer(), nullable=False),
        sa.Column("terminal_id", sa.String(12), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("terminal_seq", sa.BigInteger(), nullable=False),
        sa.Column("card_no", sa.String(16), nullable=False),
        sa.Column("card_counter", sa.Integer(), nullable=False),
        sa.Column("txn_type", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("balance_before_fen", sa.BigInteger(), nullable=False),
        sa.Column("balance_after_fen", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("tac", sa.String(8), nullable=True),
        sa.Column("card_type", sa.String(16), nullable=False),
        sa.Column("rider_category", sa.String(64), nullable=False),
        sa.Column("full_fare_fen", sa.BigInteger(), nullable=False),
        sa.Column("fare_rule", sa.String(64), nullable=False),
        sa.Column("route_id", sa.String(64), nullable=True),
        sa.Column("stop_id", sa.String(64), nullable=True),
        sa.Column("insured_fen", sa.BigInteger(), nullable=False),
        sa.Column("visit_id", sa.String(64), nullable=True),
        sa.Column("load_id", sa.String(64), nullable=True),
        sa.Column("offline_fallback", sa.Boolean(), nullable=False),
        sa.Column("deny_list_version", sa.BigInteger(), nullable=False),
        sa.Column("action_list_version", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("quarantine_reason", sa.String(32), nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("state_changed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tap_records"),
        sa.UniqueConstraint(
            "batch_pk", "record_index", name="uq_tap_records_batch_pk_record_index"
        ),
        sa.ForeignKeyConstraint(
            ["batch_pk"], ["ingest_batches.id"], name="fk_tap_records_batch_pk_ingest_batches"
        ),
        _one_of("tap_records", "kind", ("purchase", "load", "clinic")),
        _one_of("tap_records", "status", ("complete", "grey")),
        _one_of("tap_records", "state", ("received", "cleared", "quarantined", "written_off")),
    )
    op.create_index("ix_tap_records_state_id", "tap_records", ["state", "id"])
    op.create_index(
        "ix_tap_records_card_no_card_counter", "tap_records", ["card_no", "card_counter"]
    )
    op.create_index(
        "ix_tap_records_terminal_id_terminal_seq", "tap_records", ["terminal_id", "terminal_seq"]
    )
    op.create_table(
        "sequence_gaps",
        sa.Column("terminal_id", sa.String(12), nullable=False),
        sa.Column("from_seq", sa.BigInteger(), nullable=False),
        sa.Column("to_seq", sa.BigInteger(), nullable=False),
        sa.Column("detected_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("terminal_id", "from_seq", name="pk_sequence_gaps"),
        sa.ForeignKeyConstraint(
            ["terminal_id"],
            ["terminals.terminal_id"],
            name="fk_sequence_gaps_terminal_id_terminals",
        ),
        sa.CheckConstraint("from_seq <= to_seq", name="ck_sequence_gaps_range"),
    )
    list_kinds = ("deny", "action")
    heads = op.create_table(
        "list_heads",
        sa.Column("list_kind", sa.String(16), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("list_kind", name="pk_list_heads"),
        _one_of("list_heads", "list_kind", list_kinds),
    )
    op.bulk_insert(heads, [{"list_kind": kind, "version": 0} for kind in list_kinds])
    op.create_table(
        "list_versions",
        sa.Column("list_kind", sa.String(16), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("list_kind", "version", name="pk_list_versions"),
        _one_of("list_versions", "list_kind", list_kinds),
    )
    op.create_table(
        "list_changes",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("list_kind", sa.String(16), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("entry_key", sa.String(64), nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_list_changes"),
        _one_of("list_changes", "list_kind", list_kinds),
        _one_of("list_changes", "op", ("add", "remove")),
    )
    op.create_index("ix_list_changes_list_kind_version", "list_changes", ["list_kind", "version"])
    op.create_table(
        "pending_loads",
        sa.Column("load_id", sa.String(64), nullable=False),
        sa.Column("card_no", sa.String(16), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("state_changed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("load_id", name="pk_pending_loads"),
        sa.ForeignKeyConstraint(
            ["card_no"], ["cards.card_no"], name="fk_pending_loads_card_no_cards"
        ),
        _one_of("pending_loads", "state", ("pending", "delivered", "expired", "cancelled")),
        sa.CheckConstraint("amount_fen > 0", name="ck_pending_loads_amount_fen"),
    )
    op.create_index("ix_pending_loads_card_no", "pending_loads", ["card_no"])
    op.create_table(
        "list_fetches",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("terminal_id", sa.String(12), nullable=False),
        sa.Column("list_kind", sa.String(16), nullable=False),
        sa.Column("since_version", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("fetched_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_list_fetches"),
        sa.ForeignKeyConstraint(
            ["terminal_id"],
            ["terminals.terminal_id"],
            name="fk_list_fetches_terminal_id_terminals",
        ),
        _one_of("list_fetches", "list_kind", list_kinds),
    )
    op.create_index(
        "ix_list_fetches_terminal_id_list_kind",
        "list_fetches",
        ["terminal_id", "list_kind", "version"],
    )


def downgrade() -> None:
    for table in (
        "list_fetches",
        "pending_loads",
        "list_changes",
        "list_versions",
        "list_heads",
        "sequence_gaps",
        "tap_records",
        "ingest_batches",
        "terminal_nonces",
        "api_tokens",
        "card_replacements",
        "card_events",
        "cards",
        "terminals",
        "participants",
    ):
        op.drop_table(table)
