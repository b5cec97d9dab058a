"""Mobile channel: top-ups through Stripe and the Stripe events handled (de-duplication).

Revision ID: 0005_mobile
Revises: 0005_residents
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_mobile"
down_revision = "0005_residents"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
METHODS = ("card", "alipay", "wechat_pay")
STATES = ("created", "requires_action", "failed", "succeeded", "delivered", "refunded", "expired")
FLAGS = ("refund_after_delivery", "disputed", "other_intent")
OUTCOMES = ("applied", "nothing_to_do", "refused", "unmatched", "ignored")


def _one_of(table: str, column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=f"ck_{table}_{column}")


def upgrade() -> None:
    op.create_table(
        "mobile_topups",
        sa.Column("topup_id", sa.String(40), nullable=False),
        sa.Column("resident_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("card_no", sa.String(16), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("method_type", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("payment_intent_id", sa.String(64), nullable=True),
        sa.Column("load_id", sa.String(64), nullable=True),
        sa.Column("fee_fen", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("failure", sa.String(300), nullable=True),
        sa.Column("flag", sa.String(32), nullable=True),
        sa.Column("flag_detail", sa.String(300), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("topup_id", name="pk_mobile_topups"),
        sa.ForeignKeyConstraint(
            ["card_no"], ["cards.card_no"], name="fk_mobile_topups_card_no_cards"
        ),
        sa.UniqueConstraint(
            "resident_id", "request_id", name="uq_mobile_topups_resident_id_request_id"
        ),
        sa.UniqueConstraint("payment_intent_id", name="uq_mobile_topups_payment_intent_id"),
        sa.CheckConstraint("amount_fen > 0", name="ck_mobile_topups_amount_fen"),
        _one_of("mobile_topups", "method_type", METHODS),
        _one_of("mobile_topups", "state", STATES),
        _one_of("mobile_topups", "flag", FLAGS),
    )
    op.create_index("ix_mobile_topups_card_no_state", "mobile_topups", ["card_no", "state"])
    op.create_table(
        "mobile_stripe_events",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.String(300), nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_mobile_stripe_events"),
        _one_of("mobile_stripe_events", "outcome", OUTCOMES),
    )
    op.create_index("ix_mobile_stripe_events_object_id", "mobile_stripe_events", ["object_id"])


def downgrade() -> None:
    op.drop_index("ix_mobile_stripe_events_object_id", table_name="mobile_stripe_events")
    op.drop_table("mobile_stripe_events")
    op.drop_index("ix_mobile_topups_card_no_state", table_name="mobile_topups")
    op.drop_table("mobile_topups")
