"""`onecard bills`: staff look bills up at their biller, list bill payments with whether the
biller acknowledged them, and queue confirmations that are still due; `onecard bills
biller-service` runs the biller service the tests and the demo use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.billing.models import PaymentStatus
from clearing.cli.money import yuan
from clearing.cli.registry_cmd import _run, _table
from ledger.port import LedgerPort

console = Console()
PAYMENTS_PAGE_MAX = 500  # clearing.billing.service.PAYMENTS_PAGE_MAX (imported when used)


def _payments_rows(rows: list[Any]) -> list[list[Any]]:
    out = []
    for payment, confirmation in rows:
        state = confirmation.state.value if confirmation else "-"
        attempts = confirmation.attempts if confirmation else 0
        out.append(
            [
                payment.id,
                payment.biller_code,
                payment.account_no,
                yuan(payment.amount_fen),
                payment.channel.value,
                payment.status.value,
                f"{state} ({attempts})",
                (confirmation.biller_ack or confirmation.last_error or "") if confirmation else "",
            ]
        )
    return out


def register(app: typer.Typer) -> None:
    bills = typer.Typer(
        help="Water, power and heating bills: lookups, payments, confirmations.",
        no_args_is_help=True,
    )

    @bills.command("lookup")
    def lookup(
        biller: str = typer.Argument(..., help="The biller's participant code, e.g. city-water."),
        account_no: str = typer.Argument(..., help="The account number on the bill."),
    ) -> None:
        """Ask the biller for the bill due on an account."""

        from clearing.billing import service

        async def work(session: AsyncSession, _: LedgerPort | None) -> Any:
            return await service.lookup_bill(session, biller, account_no)

        bill = _run(work)
        _table(
            f"bill of {biller} account {account_no}",
            ["bill", "period", "due", "amount (yuan)", "status", "holder"],
            [
                [
                    bill.bill_id,
                    bill.period,
                    bill.due_date,
                    yuan(bill.amount_due_fen),
                    bill.status.value,
                    bill.holder_name,
                ]
            ],
            whole=("bill", "period", "due", "amount (yuan)"),
        )

    @bills.command("list")
    def list_payments(
        biller: str | None = typer.Option(None, help="Only this biller."),
        status: PaymentStatus | None = typer.Option(None, help="Only started or paid ones."),
        limit: int = typer.Option(50, min=1, max=PAYMENTS_PAGE_MAX, help="Newest N."),
    ) -> None:
        """Bill payments, newest first, with the biller's confirmation (state and attempts)."""

        from clearing.billing import service

        async def work(session: AsyncSession, _: LedgerPort | None) -> Any:
            return await service.list_payments(
                session, biller_code=biller, status=status, limit=limit
            )

        rows = _run(work)
        if not rows:
            console.print("no bill payments")
            return
        _table(
            "bill payments",
            ["payment", "biller", "account", "yuan", "channel", "status", "confirmed", "ack"],
            _payments_rows(rows),
            whole=("payment", "yuan"),
        )

    @bills.command("confirm")
    def confirm(
        payment_ids: list[str] = typer.Argument(
            None, help="These payments; none: every confirmation still due."
        ),
    ) -> None:
        """Tell billers now about paid bills they have not acknowledged (retried with backoff)."""
        from clearing.billing import tasks
        from clearing.celery_app import app as celery_app

        celery_app.set_current()
        taken = tasks.dispatch_confirmations(payment_ids or None)
        if not taken:
            console.print("nothing to confirm: every paid bill is acknowledged or queued")
            return
        console.print(f"queued {len(taken)} confirmation(s); see `onecard bills list`")

    @bills.command("biller-service")
    def biller_service(
        port: int = typer.Option(8741, min=0, max=65535, help="TCP port (0: a free one)."),
        data: Path = typer.Option(Path("var/biller"), help="Its own storage directory."),
        host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    ) -> None:
        """Run the biller service (water, power, heating) in the foreground, as the tests and the
        demo run it (scripts/biller.sh starts it in the background)."""
        from clearing.billing import simulator

        simulator.main(["--host", host, "--port", str(port), "--data", str(data)])

    app.add_typer(bills, name="bills")
