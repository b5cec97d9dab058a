"""Fixtures that reach real services.

- `pg_url`: the PostgreSQL test database made fresh by scripts/test.sh
  (ONECARD_TEST_DATABASE_URL), migrated to head once per session.
- `sqlite_url`: a fresh embedded SQLite file, migrated to head, per test.
- `localstripe`: the fake Stripe API (scripts/stripe.sh start; port ONECARD_LOCALSTRIPE_PORT,
  default 8420), its base URL; left running for the next session.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import settings

from clearing import db

# Residents' password hashes (Argon2id) at a test cost: the same code, 1 pass over 1 MiB instead
# of 3 over 64 MiB (0.7 s a hash on a loaded CI machine). Servers the tests start inherit it.
os.environ.setdefault("ONECARD_PASSWORD_HASH_TIME_COST", "1")
os.environ.setdefault("ONECARD_PASSWORD_HASH_MEMORY_KIB", "1024")

# CI (CI=true) runs every property test on a fixed sequence of examples, so a run is repeatable
# and a red CI names an example anyone can replay; local runs explore new examples each time.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(
    os.environ.get("ONECARD_HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
)

PG_URL_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/onecard_test"


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL test database, migrated to head once per session."""
    url = os.environ.get("ONECARD_TEST_DATABASE_URL", PG_URL_DEFAULT)
    db.upgrade(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh embedded SQLite database file, migrated to head."""
    url = f"sqlite+aiosqlite:///{(tmp_path / 'onecard.db').as_posix()}"
    db.upgrade(url)
    return url


@pytest.fixture(scope="session")
def localstripe() -> str:
    """localstripe answering on its port (started if it is not): its base URL."""
    port = os.environ.get("ONECARD_LOCALSTRIPE_PORT", "8420")
    script = Path(__file__).resolve().parents[1] / "scripts" / "stripe.sh"
    subprocess.run(["bash", str(script), "start"], check=True, capture_output=True)
    return f"http://127.0.0.1:{port}"
