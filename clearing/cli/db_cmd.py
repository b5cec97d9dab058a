"""`onecard db ...`: schema migrations."""

from __future__ import annotations

import typer
from rich.console import Console

from clearing import db
from clearing.settings import get_settings


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)

    @db_app.command("upgrade")
    def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
        """Apply the schema migrations to ONECARD_DATABASE_URL (default: embedded SQLite)."""
        url = get_settings().resolved_database_url()
        db.upgrade(url, revision)
        Console().print(f"[green]database at {_redact(url)} is at revision {revision}[/green]")

    app.add_typer(db_app, name="db")


def _redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
