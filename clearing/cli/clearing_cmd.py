"""`onecard clear`, `onecard settle`, `onecard quarantine ...`, `onecard statement`,
`onecard subsidies`: the finance staff's commands. Parse, call the services, print."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.approvals.models import ApprovalKind
from clearing.auth.models import Role
from clearing.auth.service import Principal
from clearing.calendar import BUSINESS_DAY_FIRST, BUSINESS_DAY_LAST
from clearing.cli import approvals_cmd
from clearing.cli.database import ready_database_url
from clearing.cli.failures import EXIT_FAILED, EXIT_USAGE, say
from clearing.cli.money import yuan
from clearing.db import DatabaseUrlInvalid
from clearing.engine.reasons import RETRIED_AUTOMATICALLY, QuarantineReason
from clearing.engine.service import (
    CHUNK_RECORDS_DEFAULT,
    CHUNK_RECORDS_MAX,
    EngineConfig,
    EngineError,
    RunListener,
    open_engine,
)
from clearing.errors import ClearingError, InvalidRequest, NotFound
from clearing.registry import service as registry_service
from clearing.settings import get_settings
from clearing.settlement.service import operator_statement

console = Console()
ACTOR_DEFAULT = "finance:cli"
ACTOR_LENGTH_MAX = 100  # settlement_runs.actor
CLI_FINANCE = Principal(0, Role.FINANCE, "cli", None)  # who the finance commands read as
TAP_ID_MAX = 2**62  # as the API bounds it: no id past a 64-bit integer reaches the database


# Tables must stay whole at 80 columns (a terminal, or a pipe where rich assumes 80): no outer
# border, numbers never wrapped or cut, only free text (codes, reasons) folds onto a second line.
def report_table(title: str, **options: Any) -> Table:
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAVY,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        **options,
    )


def number_column(table: Table, header: str, width: int = 8) -> None:
    table.add_column(header, justify="right", no_wrap=True, min_width=width)


def text_column(table: Table, header: str, width: int = 8) -> None:
    table.add_column(header, overflow="fold", min_width=width)


async def _staged_count(url: str) -> tuple[int, int]:
    """Records staged for clearing, and quarantined ones a run looks at again (their reasons
    may be cured by later records): with neither, a run has nothing to do."""
    from sqlalchemy import func, select

    from clearing.ingest.models import TapRecord
    from ledger.writer import Ledger

    def count(*where: Any) -> Any:
        return select(func.count()).select_from(TapRecord).where(*where)

    retried = sorted(str(reason) for reason in RETRIED_AUTOMATICALLY)
    async with await Ledger.open(url) as ledger, ledger.engine.connect() as conn:
        staged = (await conn.execute(count(TapRecord.state == "received"))).scalar()
        retryable = (
            await conn.execute(
                count(TapRecord.state == "quarantined", TapRecord.quarantine_reason.in_(retried))
            )
        ).scalar()
    return int(staged or 0), int(retryable or 0)


class BarListener(RunListener):
    """One run's progress bar: the records this run cleared out of those left for it. When it
    has to wait for another run (or a settlement) it says so, once per other run, and counts
    the backlog again once it has the lock: what the other run cleared is not its own."""

    def __init__(
        self, progress: Progress, task: TaskID, records_max: int | None, out: Console
    ) -> None:
        self.progress = progress
        self.task = task
        self.records_max = records_max
        self.out = out
        self.done = 0
        self.told: set[tuple[int, ...]] = set()

    def cleared(self, records: int) -> None:
        self.done += records
        self.progress.advance(self.task, records)

    def waiting(self, other_runs: tuple[int, ...]) -> None:
        if other_runs not in self.told:
            self.told.add(other_runs)
            self.out.print(f"waiting for {_holders(other_runs)}: the backlog is shared")
        self.progress.update(self.task, description="waiting")

    def backlog(self, records: int) -> None:
        total = self.done + records
        if self.records_max is not None:
            total = min(total, self.records_max)
        self.progress.update(self.task, total=max(total, 1), description="clearing")


def _holders(other_runs: tuple[int, ...] | set[int]) -> str:
    if not other_runs:
        return "a settlement run"
    runs = ", ".join(str(r) for r in sorted(other_runs))
    return f"clearing run{'s' if len(other_runs) > 1 else ''} {runs}"


async def clear_with_progress(records_max: int | None, chunk: int, quiet: bool = False) -> Any:
    """Clear what is staged under a progress bar; None when nothing is staged or retryable."""
    settings = get_settings()
    url = settings.resolved_database_url()
    total, retryable = await _staged_count(url)
    if total == 0 and retryable == 0:
        return None  # nothing to clear: no keys needed, no run recorded
    if records_max is not None:
        total = min(total, records_max)
    config = EngineConfig(chunk_records=chunk)
    async with open_engine(url, settings.key_store, config) as engine:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
        ) as progress:
            task = progress.add_task("clearing", total=max(total, 1))
            listener = BarListener(progress, task, records_max, console)
            summary = await engine.clear_pending(
                trigger="cli", records_max=records_max, progress=listener
            )
            # What this run cleared is its whole bar (another run may have taken the rest).
            done = max(listener.done, 1)
            progress.update(task, total=done, completed=done, description="cleared")
    return summary


def print_summary(summary: Any, out: Console | None = None) -> None:
    out = out or console
    table = report_table(f"clearing run {summary.run_id}")
    for header in ("seen", "posted", "dups", "torn void", "quarantined", "resolved"):
        number_column(table, header, 5)
    number_column(table, "CNY posted", 10)
    table.add_row(
        str(summary.records_seen),
        str(summary.posted),
        str(summary.duplicates),
        str(summary.voided),
        str(summary.quarantined),
        str(summary.resolved),
        yuan(summary.amount_fen_posted),
    )
    out.print(table)
    for reason, count in sorted(summary.reasons.items()):
        out.print(f"  quarantined for [yellow]{reason}[/yellow]: {count}")
    if getattr(summary, "waits", 0):  # a run that shared the backlog with another
        out.print(
            f"  waited for {_holders(summary.waited_for)}: these counts are this run's own,"
            " the other run cleared the rest"
        )


def print_settlement(settlement: Any, files: Any, out: Console | None = None) -> None:
    """Two tables that each fit 80 columns: what each participant earned, then what it is paid."""
    out = out or console
    title = f"settlement {settlement.business_day} (CNY)"
    if settlement.already_settled:
        title += ": already settled, nothing changed"
    earned = report_table(title)
    text_column(earned, "participant", 11)
    number_column(earned, "taps", 5)
    for header in ("fares", "subsidy", "insured", "gross"):
        number_column(earned, header, 9)
    paid = report_table("payouts (CNY)")
    text_column(paid, "participant", 11)
    number_column(paid, "gross", 9)
    number_column(paid, "rate", 6)
    number_column(paid, "commission", 10)
    number_column(paid, "net paid", 12)
    for line in settlement.lines:
        code = escape(line.participant_code)
        earned.add_row(
            code,
            str(line.taps),
            yuan(line.fares_fen),
            yuan(line.subsidy_fen),
            yuan(line.insured_fen),
            yuan(line.gross_fen),
        )
        paid.add_row(
            code,
            yuan(line.gross_fen),
            f"{line.commission_bp / 100:.2f}%",
            yuan(line.commission_fen),
            yuan(line.net_fen),
        )
    lines = settlement.lines
    earned.add_section()
    earned.add_row(
        "[bold]total",
        str(settlement.taps),
        yuan(sum(line.fares_fen for line in lines)),
        yuan(sum(line.subsidy_fen for line in lines)),
        yuan(sum(line.insured_fen for line in lines)),
        yuan(settlement.gross_fen),
    )
    paid.add_section()
    paid.add_row(
        "[bold]total",
        yuan(settlement.gross_fen),
        "",
        yuan(settlement.commission_fen),
        f"[bold]{yuan(settlement.net_fen)}",
    )
    out.print()
    out.print(earned)
    out.print()
    out.print(paid)
    for claim in settlement.claims:
        out.print(f"  claim on [cyan]{claim.account}[/cyan]: {yuan(claim.amount_fen)} CNY")
    out.print(f"  instructions: {files.csv}")
    out.print(f"  pain.001:     {files.xml or '(nobody to pay)'}")
    out.print(f"  claims:       {files.claims}")


def print_settled_day(
    settlement: Any, *, chosen_by_default: bool, out: Console | None = None
) -> None:
    """Say which day was settled when nobody named it, and say so when it moved no money."""
    out = out or console
    day = settlement.business_day
    if chosen_by_default:
        out.print(f"no --date given: business day [bold]{day}[/bold], the last closed day")
    if not settlement.lines:
        verb = "was" if settlement.already_settled else "is now"
        out.print(
            f"[yellow]nothing was cleared for {day}: it {verb} settled at zero, "
            "nobody is paid[/yellow]"
        )


def _undo_future_settlements() -> None:
    from clearing.settlement.service import SettlementError
    from clearing.settlement.tasks import undo_future

    try:
        undone, removed = asyncio.run(undo_future(get_settings()))
    except SettlementError as error:
        _fail(error)
    if not undone.days:
        console.print("no settlement of a day that has not begun: nothing to undo")
        return
    days = ", ".join(str(day) for day in undone.days)
    console.print(f"undid the settlement(s) of {days}: those days had not begun and moved no money")
    console.print(
        f"  {undone.records_moved} cleared record(s) given back to the days they belong to"
    )
    for path in removed:
        console.print(f"  removed {path}")


def _fail(error: Exception) -> NoReturn:
    """One line; exit 2 when the command was used wrongly (as failures.explain decides)."""
    say(str(error))
    used_wrongly = isinstance(error, InvalidRequest | DatabaseUrlInvalid)
    raise typer.Exit(EXIT_USAGE if used_wrongly else EXIT_FAILED)


async def _statement_rows(conn: Any, participant: str, business_day: date) -> Any:
    """An unknown participant is an error, not an empty statement."""
    async with AsyncSession(bind=conn) as session:
        await registry_service.get_participant(session, CLI_FINANCE, participant)
    return await operator_statement(conn, participant, business_day)


async def _in_transaction(url: str, work: Any) -> Any:
    from ledger.writer import Ledger

    async with await Ledger.open(url) as ledger, ledger.transaction() as conn:
        return await work(conn)


def _db_call(work: Any) -> Any:
    """Run `work(conn)` in one transaction on a database that is ready (or say what to do)."""
    return asyncio.run(_in_transaction(ready_database_url(), work))


def _ask_early(
    settings: Any, business_day: date | None, by: str | None, reason: str | None
) -> bool:
    """`settle --force` on a day still open asks a second officer (True: asked); on a closed
    day it settles as it would without --force (False)."""
    from clearing.settlement.service import calendar_of

    calendar = calendar_of(settings)
    now = datetime.now(ZoneInfo("UTC"))
    day = business_day or calendar.business_day(now)
    if day > calendar.business_day(now) or calendar.is_closed(day, now):
        return False  # a later day is refused as not begun; a closed one needs nobody else
    if not by or not reason:
        raise typer.BadParameter(
            "closing a day early needs a second finance officer: give --by <your staff "
            "username> and --reason, then another officer approves the request",
            param_hint="--force",
        )
    approvals_cmd.ask(ApprovalKind.EARLY_SETTLEMENT, day.isoformat(), reason, by)
    return True


def parse_day(text: str, option: str) -> date:
    """A business day YYYY-MM-DD from the command line, or a usage error saying so."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError as error:
        why = "" if "isoformat" in str(error) else f" ({error})"
        raise typer.BadParameter(
            f"{text!r} is not a day{why}: use YYYY-MM-DD, e.g. 2026-11-28", param_hint=option
        ) from None
    if not BUSINESS_DAY_FIRST <= day <= BUSINESS_DAY_LAST:
        raise typer.BadParameter(
            f"{text!r} is no business day: use YYYY-MM-DD between {BUSINESS_DAY_FIRST} "
            f"and {BUSINESS_DAY_LAST}",
            param_hint=option,
        )
    return day


def register(app: typer.Typer) -> None:
    @app.command("clear")
    def clear(
        records_max: int = typer.Option(
            None, "--max", min=1, max=TAP_ID_MAX, help="Clear at most this many records."
        ),
        chunk: int = typer.Option(
            CHUNK_RECORDS_DEFAULT,
            min=1,
            max=CHUNK_RECORDS_MAX,
            help=f"Records per database transaction (1-{CHUNK_RECORDS_MAX}).",
        ),
    ) -> None:
        """Clear every staged tap record: verify TACs, deduplicate, post, quarantine."""
        from cardio.errors import KeyStoreError

        ready_database_url()
        try:
            summary = asyncio.run(clear_with_progress(records_max, chunk))
        except KeyStoreError as error:  # no issuer keys: say what to do, not a traceback
            _fail(error)
        except EngineError as error:  # the database failed: what cleared is kept, rerun
            _fail(error)
        except (SQLAlchemyError, OSError) as error:  # never reached the first chunk
            lines = str(getattr(error, "orig", None) or error).strip().splitlines()
            _fail(RuntimeError(f"the database cannot be reached: {lines[0] if lines else error}"))
        if summary is None:
            console.print("nothing to clear: no tap records are staged")
            return
        print_summary(summary)

    @app.command("settle")
    def settle(
        day: str = typer.Option(
            None, "--date", help="Business day YYYY-MM-DD (default: the last closed day)."
        ),
        force: bool = typer.Option(
            False,
            help="Ask to close the current business day early (never a later one): a second "
            "finance officer approves it with `onecard approvals approve`.",
        ),
        actor: str = typer.Option(ACTOR_DEFAULT, help="Who settles (audited)."),
        by: str = typer.Option(None, help="With --force: your staff username (finance)."),
        reason: str = typer.Option(None, help="With --force: why the day closes early."),
        undo_future: bool = typer.Option(
            False,
            "--undo-future",
            help="Repair: undo settlements of days that have not begun and moved no money "
            "(made before such days were refused); their records go back to their days.",
        ),
    ) -> None:
        """Settle a business day: commission, payouts, CSV and pain.001 instructions."""
        from clearing.settlement.service import SettlementError
        from clearing.settlement.tasks import settle as settle_day

        if undo_future:
            if day is not None or force:  # a repair of its own: it settles nothing
                raise typer.BadParameter("--undo-future takes no --date or --force")
            _undo_future_settlements()
            return
        if not 1 <= len(actor.strip()) <= ACTOR_LENGTH_MAX:  # audited in a 100-character column
            raise typer.BadParameter(f"1 .. {ACTOR_LENGTH_MAX} characters", param_hint="--actor")
        business_day = parse_day(day, "--date") if day is not None else None
        settings = get_settings()  # a bad setting is named by the one handler, not below
        if force and _ask_early(settings, business_day, by, reason):
            return
        try:
            ready_database_url()
            settlement, files = asyncio.run(settle_day(settings, business_day, actor=actor))
        except (SettlementError, ValueError) as error:
            _fail(error)
        print_settled_day(settlement, chosen_by_default=business_day is None)
        print_settlement(settlement, files)

    @app.command("statement")
    def statement(
        participant: str = typer.Argument(..., help="Participant code, e.g. bus-1."),
        day: str = typer.Option(..., "--date", help="Settlement day YYYY-MM-DD."),
    ) -> None:
        """An operator's statement: what was cleared per line and terminal."""
        business_day = parse_day(day, "--date")
        try:
            rows = _db_call(lambda conn: _statement_rows(conn, participant, business_day))
        except NotFound as error:
            _fail(error)
        table = report_table(f"{participant} statement {day} (CNY)")
        text_column(table, "line", 6)
        table.add_column("terminal", no_wrap=True, min_width=12)
        number_column(table, "taps", 5)
        for header in ("fares", "subsidy", "insured"):
            number_column(table, header, 9)
        for row in rows:
            table.add_row(
                escape(row.route_id or "-"),
                row.terminal_id,
                str(row.taps),
                yuan(row.fares_fen),
                yuan(row.subsidy_fen),
                yuan(row.insured_fen),
            )
        console.print(table)

    @app.command("subsidies")
    def subsidies(
        first: str = typer.Option(..., "--from", help="First business day YYYY-MM-DD."),
        last: str = typer.Option(None, "--to", help="Last business day (default: --from)."),
    ) -> None:
        """Concession claims per operator, line and day (full fare - charged)."""
        from clearing.settlement.service import subsidy_report

        first_day = parse_day(first, "--from")
        last_day = parse_day(last, "--to") if last else first_day
        if last_day < first_day or last_day - first_day > timedelta(days=366):
            raise typer.BadParameter(
                "the range must run forwards and span at most a year", param_hint="--to"
            )
        rows = _db_call(lambda conn: subsidy_report(conn, first_day, last_day))
        table = report_table(f"concession claims {first_day} .. {last_day} (CNY)")
        table.add_column("day", no_wrap=True, min_width=10)
        for header in ("operator", "line", "scheme"):
            text_column(table, header, 5)
        number_column(table, "rides", 5)
        for header in ("full fare", "charged", "claim"):
            number_column(table, header, 9)
        for row in rows:
            table.add_row(
                str(row.business_day),
                escape(row.participant_code),
                escape(row.route_id or "-"),
                escape(row.scheme),
                str(row.rides),
                yuan(row.full_fare_fen),
                yuan(row.charged_fen),
                yuan(row.subsidy_fen),
            )
        console.print(table)

    quarantine = typer.Typer(help="Records the engine could not clear.", no_args_is_help=True)

    @quarantine.command("list")
    def list_(
        reason: QuarantineReason = typer.Option(None, help="Only this reason."),
        limit: int = typer.Option(50, help="At most this many (1-1000)."),
        after: int = typer.Option(
            0, min=0, max=TAP_ID_MAX, help="Only records after this id (paging)."
        ),
    ) -> None:
        """Quarantined records, oldest first, and the count per reason."""
        from clearing.quarantine import service

        async def work(conn: Any) -> Any:
            rows = await service.list_quarantined(conn, reason=reason, after_id=after, limit=limit)
            return rows, await service.counts_by_reason(conn)

        try:
            rows, counts = _db_call(work)
        except ClearingError as error:
            _fail(error)
        print_quarantine(rows, counts)

    @quarantine.command("show")
    def show(
        tap_id: int = typer.Argument(..., min=1, max=TAP_ID_MAX, help="Tap record id."),
    ) -> None:
        """One record: every field, its audit trail and how it ended."""
        from clearing.quarantine import service

        try:
            detail = _db_call(lambda conn: service.show(conn, tap_id))
        except ClearingError as error:
            _fail(error)
        print_record(tap_id, detail)

    @quarantine.command("release")
    def release(
        tap_id: int = typer.Argument(..., min=1, max=TAP_ID_MAX, help="Tap record id."),
        note: str = typer.Option(..., help="Why: what was fixed (audited)."),
        override: QuarantineReason = typer.Option(
            None,
            help="Accept this soft reason on re-clear (balance_chain_broken, grey_unresolved).",
        ),
        actor: str = typer.Option(ACTOR_DEFAULT, help="Who releases (audited)."),
    ) -> None:
        """Send a record back to clearing (`onecard clear` then decides again)."""
        from clearing.quarantine import service

        try:
            _db_call(
                lambda conn: service.release(
                    conn, tap_id, actor=actor, note=note, override=override
                )
            )
        except ClearingError as error:
            _fail(error)
        console.print(f"[green]released {tap_id}[/green]: it clears on the next run")

    @quarantine.command("write-off")
    def write_off(
        tap_id: int = typer.Argument(..., min=1, max=TAP_ID_MAX, help="Tap record id."),
        note: str = typer.Option(..., help="Why it will never clear (audited)."),
        by: str = typer.Option(..., help="Your staff username (finance): audited."),
    ) -> None:
        """Ask for a record to be closed for good (it moves no money): a second finance officer
        approves it with `onecard approvals approve`."""
        approvals_cmd.ask(ApprovalKind.WRITE_OFF, str(tap_id), note, by)

    app.add_typer(quarantine, name="quarantine")


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}"


def print_record(tap_id: int, detail: Any, out: Console | None = None) -> None:
    """Every field of one record, times in the business time zone (as `quarantine list` shows
    them) and money in yuan, then its audit trail."""
    out = out or console
    zone = ZoneInfo(get_settings().business_time_zone)
    table = report_table(f"tap record {tap_id}", show_header=False)
    table.add_column("field", no_wrap=True)
    text_column(table, "value", 20)
    for key, value in detail.record.items():
        if isinstance(value, datetime):
            table.add_row(key, _local(value, zone))
        elif key.endswith("_fen") and isinstance(value, int):
            table.add_row(f"{key.removesuffix('_fen')} (CNY)", yuan(value))
        else:
            table.add_row(key, escape(str(value)))
    out.print(table)
    for action in detail.actions:
        override = f" override={action.override}" if action.override else ""
        out.print(
            f"  {_local(action.at, zone)} {action.action} ({action.reason}{override}) "
            f"by {escape(action.actor)}: {escape(action.note)}"
        )
    if detail.disposition:
        out.print(f"  cleared without money: {detail.disposition}")


def print_quarantine(rows: Any, counts: dict[str, int], out: Console | None = None) -> None:
    """One record per two lines, so the table fits 80 columns: reason over kind, terminal over
    its serial, card over its counter, day over the local time of the tap."""
    out = out or console
    table = report_table("quarantine")
    zone = ZoneInfo(get_settings().business_time_zone)
    number_column(table, "id", 4)
    text_column(table, "reason\nkind", 10)
    table.add_column("terminal\nseq", no_wrap=True, min_width=12)
    table.add_column("card\ncounter", no_wrap=True, min_width=16)
    number_column(table, "CNY", 6)
    table.add_column("tapped\n(local)", no_wrap=True, min_width=10)
    for row in rows:
        local = row.occurred_at.astimezone(zone)
        table.add_row(
            str(row.id),
            # in words, so a long reason wraps between them; the codes are in the counts below
            f"[yellow]{escape(str(row.reason).replace('_', ' '))}[/yellow]\n{row.kind}",
            f"{row.terminal_id}\n#{row.terminal_seq}",
            f"{row.card_no}\n#{row.card_counter}",
            yuan(row.amount_fen),
            f"{local:%Y-%m-%d}\n{local:%H:%M}",
        )
    out.print()
    out.print(table)
    for reason, count in counts.items():
        out.print(f"  {reason}: {count}")
