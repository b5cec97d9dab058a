"""Fixtures that reach real services, and how the suite runs in parallel.

- `pg_url`: the PostgreSQL test database made fresh by scripts/test.sh
  (ONECARD_TEST_DATABASE_URL), migrated to head once per session. Under pytest-xdist each worker
  has a database of its own, `<test db>_<worker id>` (made fresh here, and exported as
  ONECARD_TEST_DATABASE_URL in that worker), so the databases the tests derive from it
  (`_engine`, `_recon`, `_outside`, ...) are the worker's own too.
- `sqlite_url`: a fresh embedded SQLite file, migrated to head, per test.
- `localstripe`: the fake Stripe API, this session's own (scripts/stripe.sh start on a free port,
  exported as ONECARD_LOCALSTRIPE_PORT so the demo and harnesses find it), its base URL; stopped
  at the end of the session. ONECARD_TEST_LOCALSTRIPE_PORT names one already running instead.
- every test leaves os.environ as it found it (a command run in-process may set variables).

Tests that share something the workers cannot each have (scripts/test.sh runs `-n auto --dist
loadgroup`) keep to one worker through an `xdist_group` mark:
- "pcscd": everything that touches the machine's pcscd: its vpcd readers are two, and a command
  that reads "the first reader holding a card" would talk to another test's card. Every test
  marked `pcsc` is put in it here; a test that touches pcscd without needing it says so itself.
- a module whose tests share a module-scoped fixture (a server, an installed venv) stays on one
  worker, so that fixture is made once, as in a serial run.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from _pytest.nodeid import NodeId
from hypothesis import settings
from sqlalchemy.engine import make_url

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
PCSCD_GROUP = "pcscd"
# Set by pytest-xdist in each worker ("gw0", "gw1", ...) before this file is imported.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")

if XDIST_WORKER:
    _base = make_url(os.environ.get("ONECARD_TEST_DATABASE_URL", PG_URL_DEFAULT))
    os.environ["ONECARD_TEST_DATABASE_URL"] = _base.set(
        database=f"{_base.database}_{XDIST_WORKER}"
    ).render_as_string(hide_password=False)


def pytest_itemcollected(item: pytest.Item) -> None:
    """Each test's xdist group, as it is collected."""
    if any(item.iter_markers("xdist_group")):
        return
    if any(item.iter_markers("pcsc")):
        item.add_marker(pytest.mark.xdist_group(PCSCD_GROUP))
        return
    fixtures = getattr(item, "_fixtureinfo", None)
    defs = fixtures.name2fixturedefs.values() if fixtures is not None else []
    if any(d.scope in ("module", "class", "package") for chain in defs for d in chain):
        item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup` the controller keeps together the tests whose ids end in the same
    "@group". pytest-xdist 3.8 appends it by setting `item._nodeid`, which pytest 9.2 no longer
    reads (a node's id is `item._id`), so every group was spread over the workers: here it is
    appended to the id pytest reads, and a run whose groups did not take stops at once."""
    if not (XDIST_WORKER and config.getvalue("loadgroup")):
        return
    for item in items:
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                         for m in item.iter_markers("xdist_group")})  # fmt: skip
        if not groups:
            continue
        suffix = "@" + "_".join(groups)
        if item.nodeid.rfind("@") > item.nodeid.rfind("]"):
            continue  # already suffixed (by a pytest-xdist that reaches pytest's id)
        item._id = NodeId.parse(item.nodeid + suffix)
        if not item.nodeid.endswith(suffix):
            raise pytest.UsageError(f"cannot put {item.nodeid} in xdist group {suffix[1:]}")


def _on_server(url: str, *statements: str) -> None:
    """Run statements on the server of `url`, connected to its `postgres` database."""
    admin = (
        make_url(url)
        .set(drivername="postgresql", database="postgres")
        .render_as_string(hide_password=False)
    )

    async def run() -> None:
        conn = await asyncpg.connect(admin)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def _recreate_database(url: str) -> None:
    name = make_url(url).database
    _on_server(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    """Drop the database `url` names, if it exists (a test's own scratch database)."""
    _on_server(url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL test database (this worker's own, made fresh, under xdist), migrated to
    head once per session."""
    url = os.environ.get("ONECARD_TEST_DATABASE_URL", PG_URL_DEFAULT)
    if XDIST_WORKER:
        _recreate_database(url)
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
