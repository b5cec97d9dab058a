"""`onecard reconcile` and `onecard breaks ...`: run a business day's reconciliation (and write
its report), and work the breaks as finance staff (list, show, assign, explain, resolve, ask for
a write-off, confirm a suspected clone onto the deny list).

Parses, calls the run or the service, prints. Errors reach the `onecard` group, which prints
one line (clearing/cli/failures.py). Imports nothing of clearing's command line or card
workflow: `register` is handed the database URL, clearing's card-blocking function and the way
to ask a second finance officer for a write-off (clearing/approvals).
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from clearing import db
from clearing.calendar import BUSINESS_DAY_FIRST, BUSINESS_DAY_LAST
from clearing.db.base import utc_now
from clearing.settings import get_settings
from reconciliation import report, repository, service
from reconciliation.checks.base import BreakKind
from reconciliation.errors import SourcesNotReached
from reconciliation.models import OPEN_STATUSES, BreakStatus
from reconciliation.run import RunSummary, calendar_of, run_day, sweeps

T = TypeVar("T")
console = Console()
# clearing's function that blocks a card and puts it on the deny list:
# (session, card_no, actor, reason) -> (card, deny-list version)
BlockCard = Callable[[AsyncSession, str, str, str], Awaitable[tuple[Any, int]]]
# clearing's way to ask for a break's write-off, as staff member `by`, saying why; it prints
# the request and what happens next: (break_id, reason, by) -> None
AskWriteOff = Callable[[int, str, str], None]
LIST_LIMIT_DEFAULT = 50


class _Wiring:
    database_url: Callable[[], str] = staticmethod(lambda: get_settings().resolved_database_url())
    block_card: BlockCard | None = None
    ask_write_off: AskWriteOff | None = None


def _day(value: str | None, option: str = "--date") -> date | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option
        ) from None
    if not BUSINESS_DAY_FIRST <= day <= BUSINESS_DAY_LAST:
        raise typer.BadParameter(
            f"business days run from {BUSINESS_DAY_FIRST} to {BUSINESS_DAY_LAST}", param_hint=option
        )
    return day


def _run(work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run `work` in one transaction (committed if it returns)."""
    url = _Wiring.database_url()

    async def go() -> T:
        engine = db.make_engine(url)
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _actor(by: str | None) -> str:
    return by or f"cli:{getpass.getuser()}"


def _yuan(fen: int) -> str:
    return f"{fen / 100:,.2f}"


def print_summary(summary: RunSummary) -> None:
    table = Table(title=f"reconciliation of {summary.business_day} (run {summary.run_id})")
    for column in ("check", "matched", "total", "auto-match", "breaks", "seconds"):
        table.add_column(column, justify="left" if column == "check" else "right")
    for c in summary.checks:
        table.add_row(
            c.name,
            str(c.matched),
            str(c.total),
            f"{c.not_reached}: not reached" if c.not_reached else f"{c.match_rate:.2%}",
            str(c.breaks),
            f"{c.seconds:.2f}",
        )
    console.print(table)
    for c in summary.checks:
        if c.not_reached:
            console.print(
                f"{c.not_reached}: not reached, check {c.name} not done for "
                f"{summary.business_day}: run again (onecard reconcile --date "
                f"{summary.business_day}) once it answers"
            )
    if summary.ledger_window is not None:
        console.print(report.ledger_read(*summary.ledger_window))
    if summary.accounts_swept:
        console.print(report.SWEPT)
    console.print(
        f"breaks: {summary.found} found, {summary.new} new, {summary.closed} closed by the data, "
        f"{summary.open} open in all (`onecard breaks list`)"
    )


def reconcile_cmd(
    day_text: Annotated[
        str | None, typer.Option("--date", help="business day YYYY-MM-DD (default: last closed)")
    ] = None,
    report_dir: Annotated[
        Path | None, typer.Option("--report", help="folder for the day's HTML report and CSVs")
    ] = None,
    all_accounts: Annotated[
        bool | None,
        typer.Option(
            "--all-accounts/--touched-accounts",
            help="check every ledger account against its last entry, or only those the day's "
            "entries touched (default: every account on ONECARD_RECON_SWEEP_WEEKDAY's day)",
        ),
    ] = None,
) -> None:
    """Reconcile a business day: ledger, terminals, cards (and every matcher registered)."""
    day = _day(day_text)
    settings = get_settings()
    calendar = calendar_of(settings)
    day = day or calendar.last_closed_day(utc_now())
    sweep = sweeps(settings, day) if all_accounts is None else all_accounts

    async def work(conn: AsyncConnection) -> tuple[RunSummary, report.DayReport | None]:
        summary = await run_day(conn, day, calendar=calendar, trigger="cli", sweep_accounts=sweep)
        made = await service.day_report(conn, day) if report_dir is not None else None
        return summary, made

    with console.status(f"reconciling {day} ..."):
        summary, made = _run(work)
    print_summary(summary)
    if made is not None and report_dir is not None:
        written = report.write_report(made, report_dir)
        console.print(f"wrote {len(written)} files to {report_dir}: {written[-1].name} and CSVs")
    refuse_unreached(summary)


def refuse_unreached(summary: RunSummary) -> None:
    """Fail (exit 1, one line) if a source was not reached: the run is stored all the same."""
    sources = sorted({c.not_reached for c in summary.checks if c.not_reached})
    if not sources:
        return
    checks = ", ".join(c.name for c in summary.checks if c.not_reached)
    raise SourcesNotReached(
        f"{' and '.join(sources)} not reached, so {checks} not checked for "
        f"{summary.business_day} (run {summary.run_id} and its other breaks are recorded): "
        f"check the {' and '.join(sources)} settings and connection, then run `onecard "
        f"reconcile --date {summary.business_day}` again"
    )


breaks_app = typer.Typer(
    help="Reconciliation breaks: list, show and work them.", no_args_is_help=True
)


@breaks_app.command("list")
def list_cmd(
    status: Annotated[list[BreakStatus] | None, typer.Option(help="only these statuses")] = None,
    kind: Annotated[list[BreakKind] | None, typer.Option(help="only these kinds")] = None,
    day_text: Annotated[str | None, typer.Option("--day", help="YYYY-MM-DD")] = None,
    closed: Annotated[bool, typer.Option("--all", help="closed ones too")] = False,
    after_id: Annotated[int, typer.Option(min=0)] = 0,
    limit: Annotated[int, typer.Option(min=1, max=repository.PAGE_MAX)] = LIST_LIMIT_DEFAULT,
) -> None:
    """Breaks, oldest id first (open ones unless --status or --all)."""
    day = _day(day_text, "--day")
    statuses = [s.value for s in status or ()] or (
        [] if closed else [s.value for s in OPEN_STATUSES]
    )

    async def work(conn: AsyncConnection) -> list[dict[str, Any]]:
        return await repository.list_breaks(
            conn,
            statuses=statuses,
            kinds=[k.value for k in kind or ()],
            business_day=day,
            after_id=after_id,
            limit=limit,
        )

    rows = _run(work)
    now = utc_now()
    table = Table(title=f"{len(rows)} breaks")
    for column in ("id", "kind", "status", "amount ¥", "counterpart", "assignee", "age d", "key"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["kind"],
            r["status"],
            _yuan(r["amount_fen"]),
            r["counterpart"],
            r["assignee"] or "",
            f"{service.age_days(r, now):.1f}",
            r["key"],
        )
    console.print(table)


def print_break(view: service.BreakView) -> None:
    r = view.row
    console.print(
        f"break {r['id']}: {r['kind']} · {r['status']} · ¥{_yuan(r['amount_fen'])} · "
        f"{r['counterpart']} · assignee {r['assignee'] or '-'}\n"
        f"key {r['key']} · day {r['business_day']} · first seen "
        f"{r['first_seen_at']:%Y-%m-%d %H:%M} UTC · age {service.age_days(r, utc_now()):.1f} d\ndetails {r['details']}"
    )
    table = Table(title="history")
    for column in ("at (UTC)", "who", "action", "status", "note"):
        table.add_column(column)
    for e in view.history:
        table.add_row(f"{e['at']:%Y-%m-%d %H:%M}", e["actor"], e["action"], e["status"], e["note"])
    console.print(table)


BreakArg = Annotated[
    int, typer.Argument(min=1, max=2**62, help="a break id from `onecard breaks list`")
]
NoteOpt = Annotated[str, typer.Option("--note", help="why: shown in the break's history")]
ByOpt = Annotated[str | None, typer.Option("--by", help="who (default cli:<user>)")]


@breaks_app.command("show")
def show_cmd(break_id: BreakArg) -> None:
    """A break with its history."""

    async def work(conn: AsyncConnection) -> service.BreakView:
        return await service.show(conn, break_id)

    print_break(_run(work))


@breaks_app.command("assign")
def assign_cmd(
    break_id: BreakArg,
    to: Annotated[str, typer.Option("--to", help="who takes it")],
    note: Annotated[str, typer.Option("--note")] = "",
    by: ByOpt = None,
) -> None:
    """Give a break to someone."""

    async def work(conn: AsyncConnection) -> service.BreakView:
        return await service.assign(conn, break_id, assignee=to, actor=_actor(by), note=note)

    print_break(_run(work))


def _note_command(name: str, act: Callable[..., Awaitable[service.BreakView]], doc: str) -> None:
    def command(break_id: BreakArg, note: NoteOpt, by: ByOpt = None) -> None:
        async def work(conn: AsyncConnection) -> service.BreakView:
            return await act(conn, break_id, actor=_actor(by), note=note)

        print_break(_run(work))

    command.__doc__ = doc
    breaks_app.command(name)(command)


_note_command("explain", service.explain, "Say what caused a break.")
_note_command("resolve", service.resolve, "Close a break as resolved, saying how.")


@breaks_app.command("write-off")
def write_off_cmd(
    break_id: BreakArg,
    note: NoteOpt,
    by: Annotated[str, typer.Option("--by", help="Your staff username (finance): audited.")],
) -> None:
    """Ask for a break to be written off: a second finance officer approves it with `onecard
    approvals approve`, and only then is it closed as written off."""
    ask = _Wiring.ask_write_off
    if ask is None:
        raise typer.BadParameter("this onecard has no second-person approval to ask")
    if not note.strip():
        raise typer.BadParameter("say why it is written off", param_hint="--note")
    ask(break_id, note, by)


@breaks_app.command("deny-card")
def deny_card_cmd(break_id: BreakArg, note: NoteOpt, by: ByOpt = None) -> None:
    """Confirm a suspected clone: block the card and put it on the deny list."""
    block = _Wiring.block_card
    if block is None:
        raise typer.BadParameter("this onecard has no card registry to block the card with")
    actor = _actor(by)

    async def work(conn: AsyncConnection) -> tuple[service.BreakView, int]:
        session = AsyncSession(bind=conn)

        async def deny(card_no: str, reason: str) -> int:
            _, version = await block(session, card_no, actor, reason)
            await session.flush()
            return version

        return await service.confirm_clone(conn, break_id, deny, actor=actor, note=note)

    view, version = _run(work)
    print_break(view)
    console.print(f"card {view.row['counterpart']} is on the deny list from version {version}")


def register(
    app: typer.Typer,
    *,
    database_url: Callable[[], str] | None = None,
    block_card: BlockCard | None = None,
    ask_write_off: AskWriteOff | None = None,
) -> None:
    """Mount `reconcile` and `breaks` on the `onecard` command."""
    if database_url is not None:
        _Wiring.database_url = staticmethod(database_url)
    _Wiring.block_card = block_card
    _Wiring.ask_write_off = ask_write_off
    app.command("reconcile")(reconcile_cmd)
    app.add_typer(breaks_app, name="breaks")
