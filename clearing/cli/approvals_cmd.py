"""`onecard approvals ...`: requests waiting for a second finance officer, and their decision.

`--by` names the staff account (clearing/staff) acting: whoever runs the command already holds
the database's credentials, so the CLI takes the name as given, but it must be an active
account with the role, and the one who asked is never the one who decides."""

from __future__ import annotations

from typing import Any

import typer

from clearing.approvals import service
from clearing.approvals.models import ApprovalKind, ApprovalRequest, ApprovalState
from clearing.auth.models import Role
from clearing.auth.service import Principal
from clearing.cli.registry_cmd import _run, _table, console
from clearing.settings import get_settings
from clearing.staff import service as staff_service

BY_HELP = "Your staff username (`onecard staff list`): audited."


def ask(kind: ApprovalKind, target: str, reason: str, by: str) -> ApprovalRequest:
    """Ask for `kind` on `target` as `by`; prints what happens next."""
    settings = get_settings()

    async def work(session: Any, ledger: Any) -> ApprovalRequest:
        principal = await staff_service.acting_as(session, by)
        return await service.ask(
            session, principal, service.Tools(ledger, settings), kind, target, reason
        )

    row = _run(work)
    console.print(
        f"[green]{kind.value.replace('_', ' ')} of {target} asked as request #{row.id}[/green]: "
        f"another finance officer approves it with `onecard approvals approve {row.id} --by "
        "<username>`"
    )
    return row


def _rows(rows: list[ApprovalRequest]) -> list[list[Any]]:
    """Two lines a request, so the table fits 80 columns."""
    return [
        [
            r.id,
            f"{r.kind.value}\n{r.target}",
            r.state.value,
            f"{r.requested_by}\n{r.decided_by or ''}",
            f"{r.requested_at:%Y-%m-%d %H:%M}",
            r.reason if r.state is ApprovalState.PENDING else r.decision_note or r.outcome,
        ]
        for r in rows
    ]


def register(app: typer.Typer) -> None:
    approvals = typer.Typer(
        help="Write-offs, refunds and early settlements waiting for a second officer.",
        no_args_is_help=True,
    )

    @approvals.command("list")
    def approvals_list(
        state: ApprovalState = typer.Option(None, help="pending, approved or rejected."),
        limit: int = typer.Option(100, min=1, max=service.PAGE_MAX),
    ) -> None:
        """Requests, newest first."""

        async def work(session: Any, _ledger: Any) -> list[ApprovalRequest]:
            reader = Principal(0, Role.FINANCE, "cli", None)
            return await service.list_requests(session, reader, state=state, limit=limit)

        _table(
            "approval requests",
            ["id", "kind\ntarget", "state", "asked by\ndecided by", "asked (UTC)", "why / outcome"],
            _rows(_run(work)),
            whole=("id", "kind\ntarget", "state", "asked by\ndecided by"),
        )

    @approvals.command("approve")
    def approvals_approve(
        request_id: int = typer.Argument(..., min=1, max=2**62),
        by: str = typer.Option(..., help=BY_HELP),
        note: str = typer.Option("", help="Your note (audited)."),
    ) -> None:
        """Approve a request: it is carried out now, once."""
        settings = get_settings()

        async def work(session: Any, ledger: Any) -> service.Decided:
            principal = await staff_service.acting_as(session, by)
            tools = service.Tools(ledger, settings)
            return await service.approve(session, principal, tools, request_id, note)

        decided = _run(work, with_ledger=True)
        service.write_settlement_files(decided, settings)
        again = " (already approved: nothing more was done)" if decided.again else ""
        console.print(
            f"[green]request #{request_id} approved by {decided.request.decided_by}[/green]: "
            f"{decided.request.outcome}{again}"
        )

    @approvals.command("reject")
    def approvals_reject(
        request_id: int = typer.Argument(..., min=1, max=2**62),
        by: str = typer.Option(..., help=BY_HELP),
        note: str = typer.Option(..., help="Why it is rejected (audited)."),
    ) -> None:
        """Reject a request with a reason: nothing is carried out."""

        async def work(session: Any, _ledger: Any) -> service.Decided:
            principal = await staff_service.acting_as(session, by)
            return await service.reject(session, principal, request_id, note)

        decided = _run(work)
        console.print(f"[yellow]request #{request_id} rejected by {decided.request.decided_by}")

    app.add_typer(approvals, name="approvals")
