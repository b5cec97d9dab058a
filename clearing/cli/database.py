"""The database a command works on: reachable and at the code's schema before any work starts.

The embedded SQLite default migrates itself on first use; PostgreSQL is migrated only by
`onecard db upgrade` (a shared database changes schema when its owner says so).
"""

from __future__ import annotations

from rich.console import Console

from clearing import db
from clearing.settings import get_settings


def ready_database_url() -> str:
    """The URL of a database ready for work; raises db.DatabaseError saying what to do if not.
    Blocking: call it before asyncio.run, not inside."""
    url = get_settings().resolved_database_url()
    if db.ready(url, migrate_sqlite=True):
        Console(stderr=True).print(f"[dim]set up the database in {db.describe(url)}[/dim]")
    return url
