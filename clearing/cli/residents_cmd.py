"""`onecard residents ...`: residents' accounts and the cards they linked, for staff at a
counter. Reads, and one change: releasing a card from whoever linked it."""

from __future__ import annotations

import typer

from clearing.cli.money import yuan
from clearing.cli.registry_cmd import _run, _table, console
from clearing.residents import service

PAGE_MAX = 500


def register(app: typer.Typer) -> None:
    residents = typer.Typer(
        help="Residents' accounts and their linked cards.", no_args_is_help=True
    )

    @residents.command("list")
    def residents_list(
        limit: int = typer.Option(100, min=1, max=PAGE_MAX),
        offset: int = typer.Option(0, min=0),
    ) -> None:
        """Residents, oldest account first."""
        rows = _run(lambda s, _l: service.list_residents(s, limit=limit, offset=offset))
        _table(
            "residents",
            ["id", "login", "name", "signed up (UTC)", "last login (UTC)"],
            [
                [
                    r.id,
                    r.login,
                    r.display_name,
                    f"{r.created_at:%Y-%m-%d %H:%M}",
                    None if r.last_login_at is None else f"{r.last_login_at:%Y-%m-%d %H:%M}",
                ]
                for r in rows
            ],
            whole=("id", "login"),
        )

    @residents.command("show")
    def residents_show(
        resident: str = typer.Argument(..., help="A resident id (res_…) or login"),
    ) -> None:
        """A resident and the cards they linked, with the money on each."""

        async def work(session, ledger):  # type: ignore[no-untyped-def]
            found = await service.find_resident(session, resident)
            return found, await service.my_cards(session, ledger, found.id)

        found, cards = _run(work, with_ledger=True)
        console.print(f"resident {found.id} {found.login} ({found.login_kind.value})")
        _table(
            "linked cards",
            ["card", "label", "status", "CNY on card", "CNY pending", "linked (UTC)"],
            [
                [
                    view.card.card_no,
                    view.link.label,
                    view.card.status.value,
                    None if view.money.balance_fen is None else yuan(view.money.balance_fen),
                    None if view.money.pending_fen is None else yuan(view.money.pending_fen),
                    f"{view.link.linked_at:%Y-%m-%d %H:%M}",
                ]
                for view in cards
            ],
            whole=("card", "CNY on card", "CNY pending"),
        )

    @residents.command("release-card")
    def residents_release_card(card_no: str) -> None:
        """Unlink a card from whoever linked it, so its new holder can link it."""
        link = _run(lambda s, _l: service.release_card(s, card_no))
        console.print(f"[green]card {card_no} released from resident {link.resident_id}[/green]")

    app.add_typer(residents, name="residents")
