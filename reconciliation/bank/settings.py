"""Settings of the bank and fund matchers (environment ONECARD_RECON_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from reconciliation.bank.funds import TERMS_DAYS_MAX
from reconciliation.bank.matching import TOLERANCE_DAYS_MAX


class BankReconSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONECARD_RECON_", env_file=".env", extra="ignore")

    bank_tolerance_days: int = Field(
        default=2,
        ge=0,
        le=TOLERANCE_DAYS_MAX,
        description="bank days a statement line may be before or after the payout's date",
    )
    bank_lookback_days: int = Field(
        default=400,
        ge=7,
        le=3660,
        description="how far back a run looks for payouts and statement lines (a payout still "
        "unconfirmed after this long leaves the run's reach)",
    )
    stripe_lookback_days: int = Field(
        default=7,
        ge=1,
        le=90,
        description="days before the run's day whose Stripe charges and biller files it reads",
    )
    biller_grace_days: int = Field(
        default=0,
        ge=0,
        le=30,
        description="days after a bill payment's day its biller has to list it in a file",
    )
    fund_terms_days: int = Field(
        default=30,
        ge=0,
        le=TERMS_DAYS_MAX,
        description="days a fund has to pay a claim, from the claim's business day",
    )


def get_bank_recon_settings() -> BankReconSettings:
    return BankReconSettings()
