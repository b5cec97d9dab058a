"""`onecard insight ...`: make a privacy-safe release of ridership, journeys and trends, list the
budget ledger, export a stored release, load a synthetic month to try it on.

Parses arguments, calls the service and prints; a failure is one line on stderr (exit 1), a bad
argument exit 2; never a traceback.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from clearing.settings import get_settings
from insight import report, service, synthetic
from insight.errors import InsightError
from insight.network import Network, load_network
from insight.settings import InsightSettings

insight_app = typer.Typer(
    help="Ridership, journeys and trends from card data, published privacy-safe.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")
SYNTHETIC_RIDERS_MAX = 200_000


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option
        ) from None


def _run(work: Callable[[AsyncConnection], Awaitable[T]], *, commit: bool) -> T:
    url = get_settings().resolved_database_url()

    async def go() -> T:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                result = await work(conn)
                if commit:
                    await conn.commit()
                return result
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except InsightError as error:
        raise _fail(error.detail) from None
    except (OperationalError, DBAPIError, OSError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise _fail(f"database {make_url(url).render_as_string()}: {first}") from None


def _settings() -> InsightSettings:
    try:
        return InsightSettings()
    except ValidationError as error:
        first = error.errors()[0]
        name = "ONECARD_INSIGHT_" + "_".join(str(part) for part in first["loc"]).upper()
        raise _fail(f"{name}: {first['msg']}") from None


def _network(settings: InsightSettings) -> Network:
    try:
        return load_network(settings.feed_dir)
    except InsightError as error:
        raise _fail(error.detail) from None


@insight_app.command("release")
def release_cmd(
    start: Annotated[str, typer.Option("--from", help="first business day, YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--to", help="last business day, YYYY-MM-DD")],
    out: Annotated[Path, typer.Option(help="folder for the CSV files and report.html")],
    by: Annotated[str, typer.Option(help="who asks (recorded in the budget ledger)")] = "cli",
) -> None:
    """Spend one release's privacy budget on a period and write its tables and report."""
    first, last = _day(start, "--from"), _day(end, "--to")
    settings = _settings()
    network = _network(settings)

    async def work(conn: AsyncConnection) -> service.Release:
        return await service.build_release(conn, settings, network, first, last, created_by=by)

    made = _run(work, commit=True)
    written = report.write_release(made, network, out)
    console.print(
        f"release {made.id}: {made.period_start}..{made.period_end}, epsilon {made.epsilon:g}, "
        f"k {made.k_riders_min}; wrote {len(written)} files to {out}"
    )


@insight_app.command("releases")
def releases_cmd() -> None:
    """The budget ledger: every release and the epsilon it spent."""
    rows = _run(service.budget_ledger, commit=False)
    table = Table(title="insight releases (privacy budget spent)")
    for column in ("id", "made", "by", "period", "epsilon", "k"):
        table.add_column(column)
    for row in rows:
        made: datetime = row["created_at"]
        table.add_row(
            str(row["id"]),
            f"{made:%Y-%m-%d %H:%M}",
            row["created_by"],
            f"{row['period_start']}..{row['period_end']}",
            f"{row['epsilon']:g}",
            str(row["k_riders_min"]),
        )
    console.print(table)


@insight_app.command("export")
def export_cmd(
    release_id: Annotated[str, typer.Argument(help="a release id from `onecard insight releases`")],
    out: Annotated[Path, typer.Option(help="folder for the CSV files and report.html")],
) -> None:
    """Write a stored release again (spends no budget: it is what was already published)."""
    try:
        wanted = uuid.UUID(release_id)
    except ValueError:
        raise typer.BadParameter(f"{release_id!r} is not a release id") from None
    network = _network(_settings())

    async def work(conn: AsyncConnection) -> service.Release:
        return await service.load_release(conn, wanted)

    found = _run(work, commit=False)
    written = report.write_release(found, network, out)
    console.print(f"release {found.id}: wrote {len(written)} files to {out}")


@insight_app.command("synthetic")
def synthetic_cmd(
    start: Annotated[str, typer.Option("--from", help="first day, YYYY-MM-DD")],
    riders: Annotated[int, typer.Option(min=1, max=SYNTHETIC_RIDERS_MAX)] = 3000,
    days: Annotated[int, typer.Option(min=7, max=service.PERIOD_DAYS_MAX)] = 30,
) -> None:
    """Load a synthetic month of cleared bus taps (for trying insight out; never in production)."""
    first = _day(start, "--from")
    url = get_settings().resolved_database_url()
    if not url.startswith("postgresql"):
        raise _fail("insight needs PostgreSQL: set ONECARD_DATABASE_URL=postgresql+asyncpg://...")
    taps, _ = synthetic.month(riders, first, days)

    async def go() -> int:
        connection = await asyncpg.connect(
            make_url(url).set(drivername="postgresql").render_as_string(False)
        )
        try:
            return await synthetic.load_taps(connection, taps)
        finally:
            await connection.close()

    try:
        loaded = asyncio.run(go())
    except (asyncpg.PostgresError, OSError) as error:
        raise _fail(f"could not load the synthetic month: {error}") from None
    console.print(f"loaded {loaded} synthetic cleared taps of {riders} riders from {first}")


def register(app: typer.Typer) -> None:
    app.add_typer(insight_app, name="insight")
