"""Fixtures that reach real services.

- `pg_url`: the PostgreSQL test database made fresh by scripts/test.sh
  (ONECARD_TEST_DATABASE_URL), migrated to head once per session.
- `sqlite_url`: a fresh embedded SQLite file, migrated to head, per test.
- `localstripe`: the fake Stripe API, this session's own (scripts/stripe.sh start on a free port,
  exported as ONECARD_LOCALSTRIPE_PORT so the demo and harnesses find it), its base URL; stopped
  at the end of the session. ONECARD_TEST_LOCALSTRIPE_PORT names one already running instead.
- every test leaves os.environ as it found it (a command run in-process may set variables).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from clearing import db
from clearing.settings import get_settings

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
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This session's localstripe, on a port nothing else holds: its base URL."""
    given = os.environ.get("ONECARD_TEST_LOCALSTRIPE_PORT")
    if given:
        os.environ["ONECARD_LOCALSTRIPE_PORT"] = given
        yield f"http://127.0.0.1:{given}"
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    script = Path(__file__).resolve().parents[1] / "scripts" / "stripe.sh"
    env = {
        **os.environ,
        "ONECARD_LOCALSTRIPE_PORT": port,
        "ONECARD_LOCALSTRIPE_DIR": str(tmp_path_factory.mktemp("localstripe")),
        "ONECARD_LOCALSTRIPE_WAIT_TENTHS": "600",
    }
    started = subprocess.run(
        ["bash", str(script), "start"], env=env, capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        pytest.fail(f"localstripe did not start: {started.stdout}{started.stderr}", pytrace=False)
    os.environ["ONECARD_LOCALSTRIPE_PORT"] = port
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", str(script), "stop"], env=env, capture_output=True, check=False)


@pytest.fixture(autouse=True)
def _environ_restored() -> Iterator[None]:
    """Each test leaves os.environ (and so the cached settings) as it found them."""
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()
