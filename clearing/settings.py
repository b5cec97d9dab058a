"""Settings of the back office, read from the environment (prefix ONECARD_) or a .env file.

Secrets (keys, tokens) come only from here or a key store file named here, never from code.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clearing.calendar import parse_cutoff
from clearing.db import normalize_url, sqlite_file_url

DATA_DIR_DEFAULT = Path("var")
ESCROW_ACCOUNT_DEFAULT = "6222000000000000001"


def same_bank_account(first: str, second: str) -> bool:
    """Whether two account numbers name one account (IBANs are printed in groups of four, with
    spaces or hyphens)."""

    def bare(account: str) -> str:
        return "".join(account.replace("-", " ").split()).upper()

    return bare(first) == bare(second)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONECARD_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=DATA_DIR_DEFAULT, description="Where the embedded default keeps its files."
    )
    database_url: str = Field(
        default="",
        description="Database URL. Empty: an embedded SQLite file in data_dir. "
        "postgresql://USER@HOST:PORT/NAME selects PostgreSQL (run on asyncpg whatever the "
        "driver named); sqlite:///PATH another SQLite file.",
    )
    celery_broker_url: str = Field(default="", description="Empty: Celery runs eagerly in-process.")
    celery_result_backend: str = Field(default="", description="Empty: no result backend.")
    key_store: Path = Field(
        default=Path("var/keys.json"),
        description="Key store file of issuer master keys (test keys in the embedded default).",
    )
    # Clearing and settlement (clearing/engine, clearing/settlement).
    business_time_zone: str = Field(default="Asia/Shanghai", description="The business day's zone.")
    settlement_cutoff: str = Field(default="04:00", description="HH:MM that closes a business day.")
    clearing_interval_s: int = Field(default=300, ge=10, description="Beat: clear this often.")
    recon_sweep_weekday: int = Field(
        default=6,
        ge=-1,
        le=6,
        description="The nightly reconciliation of a business day falling on this weekday "
        "(0 Monday .. 6 Sunday) also checks every ledger account's balances against its last "
        "entry, not only the accounts the day's entries touched; -1: never.",
    )
    settlement_dir: Path | None = Field(default=None, description="Empty: data_dir/settlement.")
    escrow_name: str = Field(default="onecard City Card Co.", description="Payer of payouts.")
    escrow_account: str = Field(
        default=ESCROW_ACCOUNT_DEFAULT,
        description="Escrow account: pays every payout, so no participant may be paid into it.",
    )
    escrow_bank: str = Field(default="Bank of the City", description="Escrow account's bank.")
    # Bills (clearing/billing): each biller's HTTP/JSON service; the credential from the env only.
    biller_url: str = Field(
        default="http://127.0.0.1:8741",
        description="Base URL of the biller service for billers not named in biller_urls.",
    )
    biller_urls: dict[str, str] = Field(
        default_factory=dict,
        description='Per biller code, its base URL (JSON: {"city-water": "https://..."}).',
    )
    biller_token: SecretStr = Field(
        default=SecretStr(""), description="Bearer credential sent to the biller services."
    )
    biller_timeout_s: float = Field(default=5.0, gt=0, le=60, description="Per biller request.")
    bill_amount_fen_max: int = Field(
        default=500_000, gt=0, le=10_000_000, description="Largest bill payable here, in fen."
    )
    list_signing_key: str = Field(
        default="",
        description="Ed25519 private key (32-byte seed, hex) that signs the deny and action "
        "lists. Empty: one is made once and kept in data_dir/list-signing-key.hex.",
    )
    # Mobile top-ups through Stripe (clearing/mobile). Production sets only the two secrets.
    stripe_secret_key: SecretStr = Field(
        default=SecretStr(""), description="Stripe secret key (sk_...). Empty: no top-ups."
    )
    stripe_webhook_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Signing secret of the webhook endpoint (whsec_...): events are verified.",
    )
    stripe_api_base: str = Field(
        default="",
        description="Empty: Stripe's own API. http://127.0.0.1:<port> for localstripe (tests, demo).",
    )
    localstripe_port: int = Field(
        default=8420, ge=1, le=65535, description="Port scripts/stripe.sh starts localstripe on."
    )
    topup_fen_max: int = Field(default=50_000, gt=0, description="Largest single top-up (fen).")
    card_balance_fen_max: int = Field(
        default=100_000,
        gt=0,
        description="Most a card may hold, on the card and pending together (fen).",
    )
    pending_load_expiry_days: int = Field(
        default=30, ge=1, le=365, description="An undelivered top-up is refunded after this."
    )
    # Residents (clearing/residents): sign-in tokens and the bounds on guessing.
    resident_access_token_ttl_s: int = Field(
        default=900, ge=60, le=86_400, description="A resident's access token lives this long."
    )
    resident_refresh_token_ttl_s: int = Field(
        default=30 * 86_400,
        ge=3_600,
        le=400 * 86_400,
        description="A refresh token (one use; each use gives a new one) lives this long.",
    )
    resident_login_failures_max: int = Field(
        default=5, ge=1, le=100, description="Wrong passwords per account within the window."
    )
    resident_login_window_s: int = Field(
        default=900, ge=60, description="Login failures older than this are forgotten."
    )
    password_hash_time_cost: int = Field(
        default=3, ge=1, le=20, description="Argon2id passes (RFC 9106 low-memory profile: 3)."
    )
    password_hash_memory_kib: int = Field(
        default=65_536,
        ge=64,
        le=1_048_576,
        description="Argon2id memory in KiB (RFC 9106 low-memory profile: 64 MiB). Hashes made "
        "with other parameters still verify, and are made again at the next login.",
    )
    card_link_failures_max: int = Field(
        default=5, ge=1, le=100, description="Wrong card proofs per resident and per card."
    )
    card_link_window_s: int = Field(
        default=3_600, ge=60, description="Card-proof failures older than this are forgotten."
    )
    # The web apps (clearing/web): their session cookie is encrypted and signed with this key.
    web_session_key: SecretStr = Field(
        default=SecretStr(""),
        description="Fernet key (32 bytes, urlsafe base64) of the web session cookie. Empty: "
        "one is made once and kept in data_dir/web-session-key.txt.",
    )
    web_cookie_secure: bool | None = Field(
        default=None,
        description="Mark the web cookies Secure. Empty: when the page was asked over https "
        "(behind a TLS proxy, run uvicorn with --proxy-headers so it knows).",
    )

    @field_validator("business_time_zone")
    @classmethod
    def _a_known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"no time zone {value!r}: use an IANA name, e.g. Asia/Shanghai"
            ) from None
        return value

    @field_validator("settlement_cutoff")
    @classmethod
    def _a_cutoff(cls, value: str) -> str:
        parse_cutoff(value)  # CalendarError is a ValueError: the message names HH:MM
        return value

    def resolved_database_url(self) -> str:
        """The URL on the project's driver; raises DatabaseUrlInvalid for one it cannot use."""
        if self.database_url:
            return normalize_url(self.database_url)
        return sqlite_file_url(self.data_dir / "onecard.db")

    @property
    def celery_eager(self) -> bool:
        return not self.celery_broker_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
