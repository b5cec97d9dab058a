"""`onecard serve`: run the back office's HTTP API (uvicorn) on ONECARD_DATABASE_URL."""

from __future__ import annotations

import typer
from fastapi import FastAPI
from rich.console import Console

from clearing import db
from clearing.cli.failures import EXIT_FAILED, say
from clearing.lists.signing import load_server_key, public_key_hex
from clearing.settings import get_settings
from terminals.client import key_fingerprint

STARTUP_HINT = "the port is taken or the address is not this machine's (uvicorn's reason above)"


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
        port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
        workers: int = typer.Option(1, min=1, max=64, help="Worker processes."),
        migrate: bool = typer.Option(True, help="Apply schema migrations before serving."),
        log_level: str = typer.Option("info", help="uvicorn log level."),
    ) -> None:
        """Serve the HTTP API (OpenAPI docs at /docs, health at /healthz and /readyz)."""
        import uvicorn

        url = get_settings().resolved_database_url()
        if migrate:
            db.upgrade(url)
        else:
            db.ready(url, migrate_sqlite=False)  # never serve a database at another schema
        # Made on first use if missing; the app loads the same key. Terminals compare this.
        list_key = public_key_hex(load_server_key(get_settings()))
        Console().print(
            f"[green]onecard clearing on http://{host}:{port} "
            f"(docs: /docs, database: {db_kind(url)})[/green]\n"
            f"list-signing key {key_fingerprint(list_key)} "
            "(terminal provision --server-key-fingerprint)",
            soft_wrap=True,  # whole lines in a log file too: `grep "list-signing key"` finds it
        )
        try:
            uvicorn.run(
                "clearing.cli.serve_cmd:served_app",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level=log_level,
            )
        except SystemExit as stopped:  # uvicorn exits 3 when it cannot start (port in use, ...)
            if stopped.code in (None, 0):
                raise
            say(f"cannot serve on {host}:{port}: {STARTUP_HINT}")
            raise typer.Exit(EXIT_FAILED) from None


def served_app() -> FastAPI:
    """The API app of `onecard serve` (each uvicorn worker imports this): the Celery app is
    configured in the process too, so the API can queue work after a commit (bill
    confirmations) on the broker of the settings, or eagerly in the embedded default."""
    from clearing.api.app import create_app  # here: every other command starts faster
    from clearing.celery_app import app as celery_app

    celery_app.set_current()
    return create_app()


def db_kind(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgresql") else "SQLite (embedded)"
