"""The clearing engine's tables: runs, cleared taps, dispositions, quarantine audit, clinic
splits, settlement runs, lines and claims.

Revision ID: 0003_clearing
Revises: 0002_registry
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_clearing"
down_revision = "0002_registry"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _one_of(table: str, column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=f"ck_{table}_{column}")


def upgrade() -> None:
    op.create_table(
        "clearing_runs",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("records_seen", sa.BigInteger(), nullable=False),
        sa.Column("posted", sa.BigInteger(), nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.Column("voided", sa.BigInteger(), nullable=False),
        sa.Column("quarantined", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen_posted", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_clearing_runs"),
        _one_of("clearing_runs", "state", ("running", "finished", "failed")),
    )
    op.create_table(
        "cleared_taps",
        sa.Column("card_no", sa.String(16), nullable=False),
        sa.Column("purse", sa.String(8), nullable=False),
        sa.Column("card_counter", sa.Integer(), nullable=False),
        sa.Column("tap_record_id", BIG_ID, nullable=False),
        sa.Column("terminal_id", sa.String(12), nullable=False),
        sa.Column("terminal_seq", sa.BigInteger(), nullable=False),
        sa.Column("participant_code", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("txn_type", sa.Integer(), nullable=False),
        sa.Column("card_type", sa.String(16), nullable=False),
        sa.Column("route_id", sa.String(64), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("balance_before_fen", sa.BigInteger(), nullable=False),
        sa.Column("balance_after_fen", sa.BigInteger(), nullable=False),
        sa.Column("full_fare_fen", sa.BigInteger(), nullable=False),
        sa.Column("subsidy_fen", sa.BigInteger(), nullable=False),
        sa.Column("subsidy_scheme", sa.String(32), nullable=True),
        sa.Column("insured_fen", sa.BigInteger(), nullable=False),
        sa.Column("insurer_scheme", sa.String(32), nullable=True),
        sa.Column("visit_id", sa.String(64), nullable=True),
        sa.Column("load_id", sa.String(64), nullable=True),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("settlement_day", sa.Date(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("transfer_id", sa.Uuid(), nullable=True),
        sa.Column("claim_transfer_id", sa.Uuid(), nullable=True),
        sa.Column("run_id", BIG_ID, nullable=False),
        sa.Column("cleared_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("card_no", "purse", "card_counter", name="pk_cleared_taps"),
        sa.UniqueConstraint("tap_record_id", name="uq_cleared_taps_tap_record_id"),
        sa.UniqueConstraint(
            "terminal_id", "terminal_seq", name="uq_cleared_taps_terminal_id_terminal_seq"
        ),
        _one_of("cleared_taps", "purse", ("offline", "online")),
        _one_of("cleared_taps", "outcome", ("posted", "grey_posted", "override_posted")),
        sa.CheckConstraint("amount_fen >= 0", name="ck_cleared_taps_amount_fen"),
        sa.CheckConstraint("subsidy_fen >= 0", name="ck_cleared_taps_subsidy_fen"),
        sa.CheckConstraint("insured_fen >= 0", name="ck_cleared_taps_insured_fen"),
    )
    op.create_index(
        "ix_cleared_taps_settlement_day_participant_code",
        "cleared_taps",
        ["settlement_day", "participant_code"],
    )
    op.create_index(
        "ix_cleared_taps_business_day_participant_code",
        "cleared_taps",
        ["business_day", "participant_code"],
    )
    op.create_table(
        "tap_dispositions",
        sa.Column("tap_record_id", BIG_ID, nullable=False),
        sa.Column("disposition", sa.String(16), nullable=False),
        sa.Column("duplicate_of", BIG_ID, nullable=True),
        sa.Column("run_id", BIG_ID, nullable=False),
        sa.Column("decided_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("tap_record_id", name="pk_tap_dispositions"),
        _one_of("tap_dispositions", "disposition", ("duplicate", "grey_void")),
    )
    op.create_table(
        "quarantine_actions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("tap_record_id", BIG_ID, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("override", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine_actions"),
        _one_of(
            "quarantine_actions",
            "action",
            ("quarantined", "released", "written_off", "resolved"),
        ),
    )
    op.create_index("ix_quarantine_actions_tap_record_id", "quarantine_actions", ["tap_record_id"])
    op.create_table(
        "clinic_splits",
        sa.Column("participant_code", sa.String(32), nullable=False),
        sa.Column("visit_id", sa.String(64), nullable=False),
        sa.Column("terminal_id", sa.String(12), nullable=False),
        sa.Column("card_no", sa.String(16), nullable=False),
        sa.Column("scheme", sa.String(32), nullable=True),
        sa.Column("bill_fen", sa.BigInteger(), nullable=False),
        sa.Column("deductible_fen", sa.BigInteger(), nullable=False),
        sa.Column("insured_fen", sa.BigInteger(), nullable=False),
        sa.Column("patient_fen", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("adapter", sa.String(32), nullable=False),
        sa.Column("visit_at", TS, nullable=False),
        sa.Column("benefit_year", sa.Integer(), nullable=False),
        sa.Column("decided_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("participant_code", "visit_id", name="pk_clinic_splits"),
        sa.CheckConstraint(
            "insured_fen >= 0 AND patient_fen >= 0 AND insured_fen + patient_fen = bill_fen",
            name="ck_clinic_splits_shares",
        ),
    )
    op.create_index(
        "ix_clinic_splits_card_no_scheme_benefit_year",
        "clinic_splits",
        ["card_no", "scheme", "benefit_year"],
    )
    op.create_table(
        "settlement_runs",
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("cutoff_at", TS, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("message_id", sa.String(35), nullable=False),
        sa.Column("participants", sa.Integer(), nullable=False),
        sa.Column("taps", sa.BigInteger(), nullable=False),
        sa.Column("gross_fen", sa.BigInteger(), nullable=False),
        sa.Column("commission_fen", sa.BigInteger(), nullable=False),
        sa.Column("net_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("business_day", name="pk_settlement_runs"),
        sa.UniqueConstraint("message_id", name="uq_settlement_runs_message_id"),
        _one_of("settlement_runs", "state", ("posted",)),
    )
    op.create_table(
        "settlement_lines",
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("participant_code", sa.String(32), nullable=False),
        sa.Column("participant_name", sa.String(200), nullable=False),
        sa.Column("bank_account", sa.String(40), nullable=False),
        sa.Column("bank_name", sa.String(200), nullable=False),
        sa.Column("taps", sa.BigInteger(), nullable=False),
        sa.Column("fares_fen", sa.BigInteger(), nullable=False),
        sa.Column("subsidy_fen", sa.BigInteger(), nullable=False),
        sa.Column("insured_fen", sa.BigInteger(), nullable=False),
        sa.Column("gross_fen", sa.BigInteger(), nullable=False),
        sa.Column("commission_bp", sa.Integer(), nullable=False),
        sa.Column("commission_fen", sa.BigInteger(), nullable=False),
        sa.Column("net_fen", sa.BigInteger(), nullable=False),
        sa.Column("commission_transfer_id", sa.Uuid(), nullable=True),
        sa.Column("payout_transfer_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("business_day", "participant_code", name="pk_settlement_lines"),
        sa.ForeignKeyConstraint(
            ["business_day"],
            ["settlement_runs.business_day"],
            name="fk_settlement_lines_business_day_settlement_runs",
        ),
        sa.CheckConstraint(
            "gross_fen = fares_fen + subsidy_fen + insured_fen AND "
            "net_fen = gross_fen - commission_fen AND commission_fen >= 0 AND net_fen >= 0",
            name="ck_settlement_lines_sums",
        ),
    )
    op.create_table(
        "settlement_claims",
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scheme", sa.String(32), nullable=False),
        sa.Column("items", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("business_day", "account", name="pk_settlement_claims"),
        sa.ForeignKeyConstraint(
            ["business_day"],
            ["settlement_runs.business_day"],
            name="fk_settlement_claims_business_day_settlement_runs",
        ),
        _one_of("settlement_claims", "kind", ("insurer", "subsidy")),
    )


def downgrade() -> None:
    for table in (
        "settlement_claims",
        "settlement_lines",
        "settlement_runs",
        "clinic_splits",
        "quarantine_actions",
        "tap_dispositions",
        "cleared_taps",
        "clearing_runs",
    ):
        op.drop_table(table)
