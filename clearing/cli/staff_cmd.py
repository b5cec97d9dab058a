"""`onecard staff ...`: staff accounts that sign in to the finance console with a password.

A password is read from a hidden prompt (twice), never from the command line's arguments in
clear unless a script passes --password."""

from __future__ import annotations

import typer

from clearing.cli.registry_cmd import _run, _table, console
from clearing.settings import get_settings
from clearing.staff import service


def register(app: typer.Typer) -> None:
    staff = typer.Typer(help="Staff accounts of the finance console.", no_args_is_help=True)

    @staff.command("add")
    def staff_add(
        username: str = typer.Argument(..., help="2-32 characters: a-z, then a-z 0-9 . _ -"),
        roles: str = typer.Option(..., help="Comma-separated: finance, admin, planner."),
        name: str = typer.Option(None, help="The person's name, as the console shows it."),
        password: str = typer.Option(
            ...,
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help=f"At least {service.PASSWORD_LENGTH_MIN} characters (asked if not given).",
        ),
    ) -> None:
        """Add a staff account."""
        parsed = service.parse_roles(roles)
        settings = get_settings()
        row = _run(lambda s, _l: service.add_staff(s, settings, username, password, parsed, name))
        console.print(f"[green]staff {row.username} added ({row.roles})[/green]")

    @staff.command("list")
    def staff_list() -> None:
        """Staff accounts, oldest first."""
        rows = _run(lambda s, _l: service.list_staff(s))
        _table(
            "staff",
            ["username", "name", "roles", "added (UTC)", "last sign-in (UTC)", "disabled (UTC)"],
            [
                [
                    r.username,
                    r.display_name,
                    r.roles,
                    f"{r.created_at:%Y-%m-%d %H:%M}",
                    None if r.last_login_at is None else f"{r.last_login_at:%Y-%m-%d %H:%M}",
                    None if r.disabled_at is None else f"{r.disabled_at:%Y-%m-%d %H:%M}",
                ]
                for r in rows
            ],
            whole=("username", "roles"),
        )

    @staff.command("disable")
    def staff_disable(username: str) -> None:
        """The account can no longer sign in; its open console sign-ins end now."""
        row = _run(lambda s, _l: service.disable_staff(s, username))
        console.print(f"[green]staff {row.username} disabled[/green]")

    app.add_typer(staff, name="staff")
