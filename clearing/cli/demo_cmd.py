"""`onecard demo`: the city demo (clearing/cli/city_demo.py) on the embedded default.

`onecard demo --ledger-only` is the ledger's own demo: it issues a few cards, loads them, taps on
a bus, holds and settles a clinic co-payment, corrects a wrong fare with a reversal and prints the
balances. Re-running it posts nothing twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import typer
from rich.console import Console

from clearing import db
from clearing.cli.money import yuan
from clearing.settings import get_settings
from ledger.check import check_ledger
from ledger.cli import balances_table, print_report
from ledger.ids import account_id, transfer_id
from ledger.types import Account, AccountFlags, LedgerSpec, Transfer, TransferFlags
from ledger.writer import Ledger

CNY = 1
CARDS = ("3100000000000001", "3100000000000002", "3100000000000003")
# Transfer codes of the demo (the clearing engine defines the real catalogue).
LOAD, FARE, COPAY, CORRECTION = 1, 2, 3, 9


def _transfer(key: str, debit: str, credit: str, amount: int, code: int, **extra) -> Transfer:
    return Transfer(
        id=transfer_id(key),
        debit_account_id=account_id(debit),
        credit_account_id=account_id(credit),
        amount=amount,
        ledger=CNY,
        code=code,
        **extra,
    )


async def run_demo(url: str, console: Console) -> bool:
    async with await Ledger.open(url) as ledger:
        await ledger.create_ledgers([LedgerSpec(id=CNY, name="CNY in fen")])
        names = ["bank:escrow", "bank:cash", "payable:bus-1", "payable:clinic-1"]
        accounts = [Account(account_id(n), CNY, 10, n) for n in names] + [
            Account(
                account_id(f"card:{no}"),
                CNY,
                20,
                f"card:{no}",
                flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
            )
            for no in CARDS
        ]
        account_results = await ledger.create_accounts(accounts)
        console.print(f"accounts: {_tally(account_results)}")

        card1, card2, card3 = (f"card:{no}" for no in CARDS)
        loads = [
            _transfer("demo:load:1", "bank:escrow", card1, 10_000, LOAD),
            _transfer("demo:load:2", "bank:cash", card2, 5_000, LOAD),
            _transfer("demo:load:3", "bank:escrow", card3, 200, LOAD),
        ]
        taps = [
            _transfer("demo:tap:1", card1, "payable:bus-1", 200, FARE),
            _transfer("demo:tap:2", card2, "payable:bus-1", 200, FARE),
            _transfer("demo:tap:3", card1, "payable:bus-1", 400, FARE),  # charged twice the fare
            _transfer("demo:tap:4", card3, "payable:bus-1", 300, FARE),  # more than the card holds
        ]
        # Concurrent single calls share one database transaction (group commit).
        results = await asyncio.gather(*(ledger.create_transfers([t]) for t in loads + taps))
        for t, [result] in zip(loads + taps, results, strict=True):
            console.print(f"  {yuan(t.amount):>8} CNY code {t.code}: {result.value}")

        hold = _transfer(
            "demo:clinic:hold",
            card2,
            "payable:clinic-1",
            3_000,
            COPAY,
            flags=TransferFlags.PENDING,
            timeout_s=3600,
        )
        settle = Transfer(
            id=transfer_id("demo:clinic:post"),
            debit_account_id=0,
            credit_account_id=0,
            amount=2_400,
            ledger=0,
            code=0,
            flags=TransferFlags.POST_PENDING_TRANSFER,
            pending_id=hold.id,
        )
        refund = _transfer(
            "demo:tap:3:correction",
            "payable:bus-1",
            card1,
            200,
            CORRECTION,
            reverses_id=transfer_id("demo:tap:3"),
        )
        [held] = await ledger.create_transfers([hold])
        [settled] = await ledger.create_transfers([settle])
        console.print(f"clinic hold 30.00: {held.value}; 24.00 of it settled: {settled.value}")
        [corrected] = await ledger.create_transfers([refund])
        console.print(f"reversal of the double fare (2.00 back): {corrected.value}")
        replay = await ledger.create_transfers(loads + taps)
        console.print(f"replaying every load and tap: {_tally(replay)}")

        states = await ledger.reader.list_accounts(ledger=CNY, limit=100)
        console.print(balances_table(states, title="balances after the demo (CNY)"))
        async with ledger.engine.connect() as conn:
            report = await check_ledger(conn)
        print_report(report, console)
        return report.ok


def _tally(results: list) -> str:
    return ", ".join(f"{r.value} x{n}" for r, n in Counter(results).items())


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        cards: int = typer.Option(3000, min=10, max=20_000, help="Cards to issue."),
        buses: int = typer.Option(12, min=1, max=100, help="Buses in the fleet."),
        visits: int = typer.Option(40, min=0, max=1000, help="Clinic visits."),
        seed: int = typer.Option(2026, help="The same seed gives the same day."),
        ledger_only: bool = typer.Option(
            False, "--ledger-only", help="Only the ledger demo (cards, loads, taps, a reversal)."
        ),
    ) -> None:
        """The city demo on the embedded default: cards, a day of buses and a clinic, clearing,
        settlement (SQLite, eager Celery, in-process software cards; data in var/demo)."""
        console = Console()
        if ledger_only:
            url = get_settings().resolved_database_url()
            db.upgrade(url)
            if not asyncio.run(run_demo(url, console)):
                raise typer.Exit(1)
            return
        from clearing.cli.city_demo import print_city_report, run_city_demo

        report = run_city_demo(console, cards=cards, buses=buses, visits=visits, seed=seed)
        print_city_report(console, report)
