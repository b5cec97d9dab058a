"""Residents: accounts, refresh tokens, card links (one open link per card), failed tries.

Revision ID: 0005_residents
Revises: 0004_insight
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_residents"
down_revision = "0004_insight"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
OPEN_LINK = sa.text("unlinked_at IS NULL")


def _one_of(table: str, column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=f"ck_{table}_{column}")


def upgrade() -> None:
    op.create_table(
        "residents",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("login", sa.String(254), nullable=False),
        sa.Column("login_kind", sa.String(8), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_login_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_residents"),
        sa.UniqueConstraint("login", name="uq_residents_login"),
        _one_of("residents", "login_kind", ("email", "phone")),
    )
    op.create_table(
        "resident_refresh_tokens",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("resident_id", sa.String(32), nullable=False),
        sa.Column("family_id", sa.String(32), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("access_token_id", sa.Integer(), nullable=True),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_resident_refresh_tokens"),
        sa.UniqueConstraint("token_sha256", name="uq_resident_refresh_tokens_token_sha256"),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.id"],
            name="fk_resident_refresh_tokens_resident_id_residents",
        ),
        sa.ForeignKeyConstraint(
            ["access_token_id"],
            ["api_tokens.id"],
            name="fk_resident_refresh_tokens_access_token_id_api_tokens",
        ),
    )
    for column in ("resident_id", "family_id", "access_token_id"):
        op.create_index(f"ix_resident_refresh_tokens_{column}", "resident_refresh_tokens", [column])
    op.create_table(
        "card_links",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("resident_id", sa.String(32), nullable=False),
        sa.Column("card_no", sa.String(16), nullable=False),
        sa.Column("label", sa.String(40), nullable=True),
        sa.Column("linked_at", TS, nullable=False),
        sa.Column("unlinked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_card_links"),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.id"], name="fk_card_links_resident_id_residents"
        ),
        sa.ForeignKeyConstraint(["card_no"], ["cards.card_no"], name="fk_card_links_card_no_cards"),
    )
    op.create_index("ix_card_links_resident_id", "card_links", ["resident_id"])
    op.create_index(
        "uq_card_links_open_card_no",
        "card_links",
        ["card_no"],
        unique=True,
        postgresql_where=OPEN_LINK,
        sqlite_where=OPEN_LINK,
    )
    op.create_table(
        "resident_failed_attempts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("resident_id", sa.String(32), nullable=False),
        sa.Column("card_no", sa.String(16), nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_resident_failed_attempts"),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.id"],
            name="fk_resident_failed_attempts_resident_id_residents",
        ),
        _one_of("resident_failed_attempts", "kind", ("login", "link")),
    )
    op.create_index(
        "ix_resident_failed_attempts_resident",
        "resident_failed_attempts",
        ["kind", "resident_id", "at"],
    )
    op.create_index(
        "ix_resident_failed_attempts_card", "resident_failed_attempts", ["kind", "card_no", "at"]
    )


def downgrade() -> None:
    op.drop_table("resident_failed_attempts")
    op.drop_index("uq_card_links_open_card_no", table_name="card_links")
    op.drop_table("card_links")
    op.drop_table("resident_refresh_tokens")
    op.drop_table("residents")
