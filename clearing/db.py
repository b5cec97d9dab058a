"""Database plumbing of the back office: engines and schema migrations (Alembic owns the schema).

Never creates tables by hand: `upgrade` runs the migrations in clearing/migrations.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    return config


def ensure_sqlite_dir(url: str) -> None:
    """The embedded default keeps its SQLite file under data_dir: make the folder."""
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix) and url != prefix + ":memory:":
        Path(url[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (blocking; call outside a running event loop)."""
    ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


def make_engine(url: str, *, pooled: bool = True) -> AsyncEngine:
    """An async engine; Celery tasks pass pooled=False (NullPool) since each task has its own loop."""
    ensure_sqlite_dir(url)
    if pooled:
        return create_async_engine(url)
    return create_async_engine(url, poolclass=NullPool)
