"""Locks the database must take for the back office to be safe on the embedded SQLite."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


def sqlite_write_lock_at_begin(engine: AsyncEngine) -> None:
    """Embedded SQLite: take the write lock at BEGIN and wait for it, so two requests never
    fail on a lock upgrade (reads then writes) and never see "database is locked" at once."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
