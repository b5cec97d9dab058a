"""Settings of insight (environment ONECARD_INSIGHT_*): the k threshold and the privacy budget."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class InsightSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONECARD_INSIGHT_", extra="ignore")

    k_riders_min: int = Field(
        default=10, ge=2, le=1000, description="no cell describing fewer riders is published"
    )
    epsilon_per_release: float = Field(
        default=1.0, gt=0, le=10, description="privacy budget (epsilon) one release spends"
    )
    epsilon_per_day_max: float = Field(
        default=4.0,
        gt=0,
        le=40,
        description="cap on the epsilon of all releases covering any one business day",
    )
    taps_per_rider_day_max: int = Field(
        default=8, ge=1, le=50, description="taps of one rider in one day counted (the bound)"
    )
    walk_m_max: int = Field(
        default=800, ge=0, le=5000, description="walking distance for an inferred alighting"
    )
    feed_dir: str = Field(default="", description="fare feed directory or zip; empty: sample")


def get_insight_settings() -> InsightSettings:
    return InsightSettings()
