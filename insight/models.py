"""The one table insight writes: `insight_releases`, the ledger of privacy budget spent.

One row per release: the period it covers, the epsilon it spent, k, the bound per rider-day, and
the published (already privacy-safe) tables, so a release can be read again without spending
budget. Created by migration 0004_insight; never holds a card number or a card's key.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Date, DateTime, Float, Integer, MetaData, String, Table, Uuid

metadata = MetaData()

releases = Table(
    "insight_releases",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("period_start", Date(), nullable=False),
    Column("period_end", Date(), nullable=False),
    Column("epsilon", Float(), nullable=False),
    Column("k_riders_min", Integer(), nullable=False),
    Column("taps_per_rider_day_max", Integer(), nullable=False),
    Column("published", JSON(), nullable=False),
)
