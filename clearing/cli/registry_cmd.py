"""`onecard registry ...`: participants, terminals, cards and access tokens, for admin staff.

Commands parse arguments, call the registry and auth services in one transaction, and print.
A token is shown once, when it is issued; only its hash is stored.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clearing import db
from clearing.approvals import service as approvals
from clearing.approvals.models import ApprovalKind
from clearing.auth import service as auth_service
from clearing.auth.models import Role
from clearing.books.chart import BooksError
from clearing.cards import service as cards_service
from clearing.cli.database import ready_database_url
from clearing.cli.failures import explain, say
from clearing.cli.money import yuan
from clearing.db.base import utc_now
from clearing.db.locks import sqlite_write_lock_at_begin
from clearing.errors import ClearingError
from clearing.registry import service
from clearing.registry.models import CardType, ParticipantKind, TerminalKind, TerminalStatus
from clearing.registry.schemas import (
    CardIssue,
    CardRefund,
    ParticipantCreate,
    TerminalCreate,
    TerminalUpdate,
)
from clearing.settings import get_settings
from clearing.staff import service as staff_service
from ledger.errors import InvariantError, LedgerError
from ledger.port import LedgerPort
from ledger.writer import Ledger

T = TypeVar("T")
ACTOR = "admin:cli"
ACTOR_LENGTH_MAX = 100  # card_events.actor
TOKEN_ID_MAX = 2**31 - 1  # api_tokens.id is a 32-bit integer column
TOKEN_SUBJECT_MAX = 64  # api_tokens.subject
TOKEN_LABEL_MAX = 200  # api_tokens.label
console = Console()


async def _in_transaction(
    url: str, work: Callable[[AsyncSession, LedgerPort | None], Awaitable[T]], *, with_ledger: bool
) -> T:
    engine = db.make_engine(url)
    if engine.dialect.name == "sqlite":
        sqlite_write_lock_at_begin(engine)
    try:
        async with AsyncExitStack() as stack:
            ledger: LedgerPort | None = None
            if with_ledger:
                ledger = await stack.enter_async_context(await Ledger.open(url))
            async with async_sessionmaker(engine, expire_on_commit=False)() as session:
                result = await work(session, ledger)
                await session.commit()
                return result
    finally:
        await engine.dispose()


def _run(
    work: Callable[[AsyncSession, LedgerPort | None], Awaitable[T]], *, with_ledger: bool = False
) -> T:
    """Run `work` in one transaction; a refusal is one red line and exit 1 (2: bad input)."""
    url = ready_database_url()
    try:
        return asyncio.run(_in_transaction(url, work, with_ledger=with_ledger))
    except (ClearingError, LedgerError, BooksError) as error:
        message, code = explain(error)
        say(message)
        raise typer.Exit(code) from None


def _opened(ledger: LedgerPort | None) -> LedgerPort:
    """The ledger `_run(..., with_ledger=True)` opened."""
    if ledger is None:
        raise InvariantError("the command runs without the ledger it needs")
    return ledger


def _table(
    title: str, columns: list[str], rows: list[list[Any]], *, whole: tuple[str, ...] = ()
) -> None:
    console.print(_build_table(title, columns, rows, whole=whole))


def _build_table(
    title: str, columns: list[str], rows: list[list[Any]], *, whole: tuple[str, ...] = ()
) -> Table:
    """A table whose `whole` columns (ids, accounts, amounts) are never cut or wrapped; the
    other columns fold onto more lines when the terminal is narrow (80 columns, or a pipe)."""
    table = Table(title=title, box=box.SIMPLE_HEAVY, show_edge=False, pad_edge=False)
    for column in columns:
        if column in whole:
            table.add_column(column, no_wrap=True, min_width=len(column))
        else:
            table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*["" if value is None else escape(str(value)) for value in row])
    return table


def participants_table(rows: list[Any]) -> Table:
    """Participants, fitting 80 columns: the bank account, commission and status are never cut
    or folded (finance staff copy the account into payments); code over kind, name and bank
    fold onto more lines instead."""
    table = Table(
        title="participants",
        title_justify="left",
        box=box.SIMPLE_HEAVY,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    table.add_column("code\nkind", overflow="fold", min_width=6)
    table.add_column("name", overflow="fold", min_width=4)
    table.add_column("commission", justify="right", no_wrap=True)
    table.add_column("bank account", no_wrap=True)
    table.add_column("bank", overflow="fold", min_width=4)
    table.add_column("status", no_wrap=True)
    for r in rows:
        table.add_row(
            f"{escape(r.code)}\n{r.kind.value}",
            escape(r.name),
            f"{r.commission_bp / 100:.2f}%",
            escape(r.bank_account),
            escape(r.bank_name),
            r.status.value,
        )
    return table


def _admin() -> auth_service.Principal:
    return auth_service.Principal(0, Role.ADMIN, "cli", None)


def register(app: typer.Typer) -> None:
    registry = typer.Typer(help="Participants, terminals, cards and tokens.", no_args_is_help=True)
    participant = typer.Typer(
        help="Bus operators, clinics, utilities, funds.", no_args_is_help=True
    )
    terminal = typer.Typer(help="Validators, clinic terminals, kiosks.", no_args_is_help=True)
    card = typer.Typer(help="Cards and their life.", no_args_is_help=True)
    token = typer.Typer(help="Bearer tokens for staff and residents.", no_args_is_help=True)

    @participant.command("add")
    def participant_add(
        code: str = typer.Argument(..., help="Short id, e.g. bus-1 (names payable:<code>)."),
        name: str = typer.Option(..., help="Legal name."),
        kind: ParticipantKind = typer.Option(..., help="What the participant is."),
        commission_bp: int = typer.Option(..., min=0, max=10_000, help="Commission, basis points."),
        bank_account: str = typer.Option(..., help="Settlement account (IBAN or CN account)."),
        bank_name: str = typer.Option(..., help="Settlement bank."),
        scheme: str | None = typer.Option(None, help="Insurer / fund: its scheme."),
    ) -> None:
        """Add a participant."""
        body = _valid(
            ParticipantCreate,
            code=code,
            name=name,
            kind=kind,
            commission_bp=commission_bp,
            bank_account=bank_account,
            bank_name=bank_name,
            scheme=scheme,
        )
        escrow = get_settings().escrow_account
        row = _run(lambda s, _l: service.create_participant(s, body, escrow_account=escrow))
        console.print(f"[green]participant {row.code} added ({row.kind.value})[/green]")

    @participant.command("list")
    def participant_list(limit: int = typer.Option(100, min=1, max=500)) -> None:
        """List participants."""
        rows = _run(lambda s, _l: service.list_participants(s, _admin(), limit=limit, offset=0))
        console.print(participants_table(rows))

    @terminal.command("add")
    def terminal_add(
        terminal_id: str = typer.Argument(..., help="SAM terminal number, 12 hex digits."),
        participant_code: str = typer.Option(..., "--participant", help="Owner's code."),
        kind: TerminalKind = typer.Option(TerminalKind.BUS),
        public_key: str = typer.Option(..., help="Ed25519 public key, 64 hex digits."),
        line: str | None = typer.Option(None, help="Line / route."),
    ) -> None:
        """Register a terminal and its public key."""
        body = _valid(
            TerminalCreate,
            terminal_id=terminal_id.upper(),
            participant=participant_code,
            kind=kind,
            public_key=public_key,
            line=line,
        )
        row = _run(lambda s, _l: service.register_terminal(s, body))
        console.print(f"[green]terminal {row.terminal_id} registered[/green]")

    @terminal.command("list")
    def terminal_list(limit: int = typer.Option(100, min=1, max=500)) -> None:
        """List terminals."""

        async def work(s: AsyncSession, _l: Any) -> tuple[list[Any], dict[int, str]]:
            rows = await service.list_terminals(s, _admin(), limit=limit, offset=0)
            codes = await service.participant_codes(s, {r.participant_id for r in rows})
            return rows, codes

        rows, codes = _run(work)
        _table(
            "terminals",
            ["terminal", "participant", "kind", "line", "status", "highest seq"],
            [
                [
                    r.terminal_id,
                    codes.get(r.participant_id, r.participant_id),  # the code it was added with
                    r.kind.value,
                    r.line,
                    r.status.value,
                    r.seq_high,
                ]
                for r in rows
            ],
        )

    @terminal.command("status")
    def terminal_status(terminal_id: str, status: TerminalStatus) -> None:
        """Suspend, reactivate or retire a terminal."""
        body = TerminalUpdate(status=status)
        row = _run(lambda s, _l: service.update_terminal(s, terminal_id.upper(), body))
        console.print(f"[green]terminal {row.terminal_id} is {row.status.value}[/green]")

    @card.command("issue")
    def card_issue(
        card_no: str = typer.Argument(..., help="16 digits."),
        holder_id: str = typer.Option(..., help="Resident id (what resident tokens name)."),
        holder_name: str = typer.Option(...),
        card_type: CardType = typer.Option(CardType.ADULT),
        scheme: str | None = typer.Option(None, help="Medical-insurance scheme."),
        deposit_fen: int = typer.Option(2000, min=0),
        first_load_fen: int = typer.Option(0, min=0),
        paid_by: str = typer.Option("cash", help="cash or bank"),
    ) -> None:
        """Issue a card; its deposit and first load are paid in.

        For a card personalised elsewhere.

        To personalise a software card and open its books at once: card issue --register.
        """
        body = _valid(
            CardIssue,
            card_no=card_no,
            holder_id=holder_id,
            holder_name=holder_name,
            card_type=card_type,
            scheme=scheme,
            deposit_fen=deposit_fen,
            first_load_fen=first_load_fen,
            paid_by=paid_by,
        )
        row = _run(lambda s, led: service.issue_card(s, led, body, ACTOR), with_ledger=True)
        console.print(f"[green]card {row.card_no} issued to {row.holder_id}[/green]")

    @card.command("show")
    def card_show(card_no: str) -> None:
        """A card, its ledger balance and its history."""
        view = _run(lambda s, led: service.get_card(s, _admin(), card_no, led), with_ledger=True)
        c = view.card
        console.print(
            f"card {c.card_no} {c.card_type.value} {c.status.value} holder {c.holder_id} "
            f"balance {yuan(view.balance_fen)} CNY deposit {yuan(c.deposit_fen)} CNY"
        )
        _table(
            "history",
            ["at (UTC)", "event", "actor", "CNY", "reason"],
            [
                [
                    f"{e.at:%Y-%m-%d %H:%M:%S}",
                    e.kind.value,
                    e.actor,
                    "" if e.amount_fen is None else yuan(e.amount_fen),
                    e.reason,
                ]
                for e in view.events
            ],
            whole=("at (UTC)", "CNY"),
        )

    @card.command("lost")
    def card_lost(card_no: str, reason: str = typer.Option("reported lost")) -> None:
        """Report a card lost: it goes on the deny list at once."""
        row, version = _run(lambda s, _l: cards_service.report_lost(s, _admin(), card_no, reason))
        console.print(f"[green]card {row.card_no} is lost; deny list version {version}[/green]")

    @card.command("block")
    def card_block(card_no: str, reason: str = typer.Option(...)) -> None:
        """Block a card (e.g. a suspected clone)."""
        row, version = _run(lambda s, _l: cards_service.block_card(s, card_no, ACTOR, reason))
        console.print(f"[green]card {row.card_no} is blocked; deny list version {version}[/green]")

    @card.command("unblock")
    def card_unblock(card_no: str, reason: str = typer.Option(...)) -> None:
        """Unblock a blocked card, or a lost card that was found."""
        row, version = _run(lambda s, _l: cards_service.unblock_card(s, card_no, ACTOR, reason))
        console.print(f"[green]card {row.card_no} is active; deny list version {version}[/green]")

    @card.command("replace")
    def card_replace(
        card_no: str, new_card_no: str = typer.Option(...), reason: str = typer.Option(...)
    ) -> None:
        """Replace a card; its balance follows once its last taps have cleared."""
        row = _run(
            lambda s, led: cards_service.replace_card(s, led, card_no, new_card_no, ACTOR, reason),
            with_ledger=True,
        )
        console.print(
            f"[green]card {row.old_card_no} replaced by {row.new_card_no}; "
            f"balance moves when ready ({row.state.value})[/green]"
        )

    @card.command("complete-replacements")
    def card_complete_replacements() -> None:
        """Move the balances of replaced cards whose last taps have cleared."""
        rows = _run(
            lambda s, led: cards_service.complete_replacements(s, _opened(led)), with_ledger=True
        )
        _table(
            "balances moved",
            ["old card", "new card", "moved CNY", "pending load"],
            [[r.old_card_no, r.new_card_no, yuan(r.moved_fen), r.load_id] for r in rows],
            whole=("old card", "new card", "moved CNY"),
        )

    @card.command("refund")
    def card_refund(
        card_no: str,
        reason: str = typer.Option(..., help="Why the card is refunded (audited)."),
        paid_by: str = typer.Option("cash", help="cash or bank"),
        by: str = typer.Option(..., help="Your staff username (admin or finance): audited."),
        yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation (scripts)."),
    ) -> None:
        """Ask to refund a returned card's balance and deposit (the card is then denied for
        good): a finance officer other than you approves it with `onecard approvals approve`."""
        body = _valid(CardRefund, reason=reason, paid_by=paid_by)
        if not yes:
            _confirm(f"ask to refund card {card_no} ({body.paid_by}) and deny it for good?")

        async def ask(session: AsyncSession, ledger: LedgerPort | None) -> Any:
            principal = await staff_service.acting_as(session, by)
            tools = approvals.Tools(ledger, get_settings())
            kind = ApprovalKind.CARD_REFUND
            return await approvals.ask(
                session, principal, tools, kind, card_no, body.reason, paid_by=body.paid_by
            )

        row = _run(ask)
        console.print(
            f"[green]refund of card {card_no} asked as request #{row.id}[/green]: a finance "
            f"officer other than you approves it with `onecard approvals approve {row.id} --by "
            "<username>`"
        )

    @registry.command("deny-coverage")
    def deny_coverage(
        version: int | None = typer.Option(None, min=0, help="Deny-list version (default: now)."),
    ) -> None:
        """How far a deny-list version has reached the active fleet, and how fast."""
        from clearing.lists.service import deny_list_coverage

        c = _run(lambda s, _l: deny_list_coverage(s, version))
        took = "not yet" if c.seconds_to_fleet is None else f"{c.seconds_to_fleet:.0f} s"
        console.print(
            f"deny list v{c.version}: {c.terminals_reached}/{c.terminals_active} active terminals "
            f"hold it; whole fleet: {took}"
        )
        if c.terminals_behind:
            shown = ", ".join(c.terminals_behind[:20])
            more = len(c.terminals_behind) - 20
            console.print(f"behind: {shown}" + (f" and {more} more" if more > 0 else ""))

    @token.command("issue")
    def token_issue(
        role: Role = typer.Argument(..., help="finance, operator, admin or resident"),
        subject: str | None = typer.Option(
            None, help="Operator: participant code. Resident: resident id. Staff: a name."
        ),
        label: str = typer.Option("", help="Who or what the token is for."),
        days: int | None = typer.Option(None, min=1, max=3650, help="Expires after N days."),
    ) -> None:
        """Issue a bearer token (shown once)."""
        # The columns' lengths: checked here, not by the database after the token is made.
        if subject is not None and not 1 <= len(subject) <= TOKEN_SUBJECT_MAX:
            raise typer.BadParameter(f"1 .. {TOKEN_SUBJECT_MAX} characters", param_hint="--subject")
        if len(label) > TOKEN_LABEL_MAX:
            raise typer.BadParameter(f"at most {TOKEN_LABEL_MAX} characters", param_hint="--label")
        expires_at = utc_now() + timedelta(days=days) if days else None
        secret, row = _run(
            lambda s, _l: service.issue_token(
                s, role, subject=subject, label=label or role.value, expires_at=expires_at
            )
        )
        console.print(  # the secret is shown once: nothing in the line may fail to print
            f"token {row.id} ({row.role.value}, {escape(row.subject or '-')}); keep it secret:"
        )
        print(secret)

    @token.command("list")
    def token_list() -> None:
        """List tokens (never their secrets)."""
        rows = _run(lambda s, _l: auth_service.list_tokens(s))
        _table(
            "tokens",
            ["id", "role", "subject", "label", "created", "expires", "revoked"],
            [
                [
                    r.id,
                    r.role.value,
                    r.subject,
                    r.label,
                    r.created_at.isoformat(),
                    r.expires_at and r.expires_at.isoformat(),
                    r.revoked_at and r.revoked_at.isoformat(),
                ]
                for r in rows
            ],
        )

    @token.command("revoke")
    def token_revoke(
        token_id: int = typer.Argument(..., min=1, max=TOKEN_ID_MAX, help="The token's id."),
    ) -> None:
        """Revoke a token at once."""
        row = _run(lambda s, _l: auth_service.revoke_token(s, token_id))
        console.print(f"[green]token {row.id} revoked[/green]")

    registry.add_typer(participant, name="participant")
    registry.add_typer(terminal, name="terminal")
    registry.add_typer(card, name="card")
    registry.add_typer(token, name="token")
    app.add_typer(registry, name="registry")


def _confirm(question: str) -> None:
    """Ask before an action that cannot be undone; without a terminal to ask on, refuse."""
    if not sys.stdin.isatty():
        say("no terminal to confirm on: pass --yes to confirm")
        raise typer.Exit(2)
    if not typer.confirm(question, default=False):
        say("not confirmed: nothing was done")
        raise typer.Exit(1)


def _valid(model: type[T], **fields: Any) -> T:
    """Validate CLI input with the API's own schema; print what is wrong and stop."""
    from pydantic import ValidationError

    try:
        return model(**fields)  # type: ignore[call-arg]
    except ValidationError as error:
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"])
            console.print(f"[red]{escape(where)}: {escape(item['msg'])}[/red]")
        raise typer.Exit(2) from error
