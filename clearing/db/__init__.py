"""Database plumbing of the back office: URLs, engines and schema migrations (Alembic owns the schema).

Ground: `base.py` holds the ORM base and the shared column types, `locks.py` the locks the
embedded SQLite needs; every domain's tables map onto that one base.

Never creates tables by hand: `upgrade` runs the migrations in clearing/migrations. Turns the
driver's connection failures into DatabaseError with a message that says what to do.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from clearing.errors import ClearingError

MIGRATIONS_DIR = Path(__file__).parent.parent / "migrations"
# The project chooses its own drivers: a URL naming only the backend (or another driver of it)
# is run on ours.
DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}
URL_EXAMPLES = "postgresql://USER@HOST:5432/NAME or sqlite:///PATH"
UPGRADE_HINT = "run `onecard db upgrade`"
# PostgreSQL SQLSTATE classes and codes met when connecting (Appendix A of its manual).
SQLSTATE_NO_DATABASE = "3D000"
SQLSTATE_AUTH_CLASS = "28"
SQLSTATE_NO_TABLE = "42P01"


class DatabaseError(ClearingError):
    """The database cannot be used as configured."""

    code = "database_unavailable"
    status = 503
    title = "The database is not available"


class DatabaseUrlInvalid(DatabaseError):
    code = "database_url_invalid"


class DatabaseUnreachable(DatabaseError):
    code = "database_unreachable"


class DatabaseNotSetUp(DatabaseError):
    code = "database_not_set_up"


def sqlite_file_url(path: Path) -> str:
    """The URL of the SQLite file at `path`, quoted so it reads back as the same path (a folder
    named "%41" stays itself instead of becoming "A")."""
    return URL.create(DRIVERS["sqlite"], database=path.as_posix()).render_as_string()


def normalize_url(url: str) -> str:
    """The URL on the project's driver: postgresql://, postgres:// and postgresql+psycopg://
    become postgresql+asyncpg://, sqlite:// becomes sqlite+aiosqlite://; anything else is refused."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise DatabaseUrlInvalid(
            f"ONECARD_DATABASE_URL is not a database URL: use {URL_EXAMPLES}"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in DRIVERS:
        raise DatabaseUrlInvalid(
            f"ONECARD_DATABASE_URL names {backend!r}: onecard runs on PostgreSQL or SQLite "
            f"({URL_EXAMPLES})"
        )
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise DatabaseUrlInvalid(
            "ONECARD_DATABASE_URL names no SQLite file (an in-memory database is gone when the "
            "command ends): use sqlite:///PATH"
        )
    return parsed.set(drivername=DRIVERS[backend]).render_as_string(hide_password=False)


def describe(url: str) -> str:
    """Where the database is, for a message: HOST:PORT/NAME, or the SQLite file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"the SQLite file {parsed.database or ':memory:'}"
    return f"{_host_port(parsed)}/{parsed.database or ''}"


def _host_port(parsed: URL) -> str:
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


def connection_failure(url: str, error: BaseException) -> DatabaseError | None:
    """The DatabaseError a failed connection means, or None if `error` is not one."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if isinstance(error, DBAPIError) and "unable to open database file" in str(error.orig):
            return DatabaseUnreachable(
                f"cannot open {describe(url)}: check that its folder exists and is writable "
                "(set ONECARD_DATA_DIR or ONECARD_DATABASE_URL)"
            )
        return None
    where = _host_port(parsed)
    if isinstance(error, ConnectionError | socket.gaierror | TimeoutError):  # refused, no host
        return DatabaseUnreachable(
            f"cannot reach the database at {where}: is PostgreSQL running? "
            "(set ONECARD_DATABASE_URL)"
        )
    sqlstate = str(getattr(getattr(error, "orig", None), "sqlstate", "") or "")
    if sqlstate == SQLSTATE_NO_DATABASE:
        return DatabaseUnreachable(
            f"there is no database {parsed.database!r} at {where}: create it "
            f"(createdb -h {parsed.host or 'localhost'} -p {parsed.port or 5432} "
            f"{parsed.database}) and {UPGRADE_HINT}, or set ONECARD_DATABASE_URL"
        )
    if sqlstate.startswith(SQLSTATE_AUTH_CLASS):
        return DatabaseUnreachable(
            f"the database at {where} refused user {parsed.username!r}: check the user and "
            "password in ONECARD_DATABASE_URL"
        )
    return None


def missing_table(error: BaseException) -> bool:
    """True if `error` says a table does not exist (the schema was never migrated)."""
    if not isinstance(error, DBAPIError):
        return False
    if str(getattr(error.orig, "sqlstate", "") or "") == SQLSTATE_NO_TABLE:
        return True
    return "no such table" in str(error.orig)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's options are configparser values: a '%' (a percent-encoded password or path, a
    # folder named "50%") is an interpolation there unless doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def ensure_sqlite_dir(url: str) -> None:
    """The embedded default keeps its SQLite file under data_dir: make the folder."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (blocking; call outside a running event loop)."""
    ensure_sqlite_dir(url)
    try:
        command.upgrade(alembic_config(url), revision)
    except (OSError, DBAPIError) as error:
        failure = connection_failure(url, error)
        if failure is None:
            raise
        raise failure from error


async def current_revision(url: str) -> str | None:
    """The schema revision the database is at (None: never migrated)."""
    ensure_sqlite_dir(url)
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    except (OSError, DBAPIError) as error:
        failure = connection_failure(url, error)
        if failure is None:
            raise
        raise failure from error
    finally:
        await engine.dispose()


def ready(url: str, *, migrate_sqlite: bool = True) -> bool:
    """Check the database can be reached and is at the code's schema; the embedded SQLite
    default migrates itself (returns True when it did), PostgreSQL is only ever migrated by
    `onecard db upgrade`. Blocking: call outside a running event loop."""
    revision = asyncio.run(current_revision(url))
    script = ScriptDirectory.from_config(alembic_config(url))
    if revision in script.get_heads():
        return False
    known = {step.revision for step in script.walk_revisions()}
    if revision is not None and revision not in known:
        raise DatabaseNotSetUp(
            f"the database at {describe(url)} is at schema {revision}, which this onecard does "
            "not know: it was migrated by a newer onecard"
        )
    if make_url(url).get_backend_name() == "sqlite" and migrate_sqlite:
        upgrade(url)
        return True
    state = "not set up" if revision is None else f"at an older schema ({revision})"
    raise DatabaseNotSetUp(f"the database at {describe(url)} is {state}: {UPGRADE_HINT}")


def make_engine(url: str, *, pooled: bool = True) -> AsyncEngine:
    """An async engine; Celery tasks pass pooled=False (NullPool) since each task has its own loop."""
    ensure_sqlite_dir(url)
    if pooled:
        return create_async_engine(url)
    return create_async_engine(url, poolclass=NullPool)
