"""`onecard card issue --register`: the card layer's `card issue` that also opens the card's books.

The other `card` commands are cardio's own (cardio/cli.py); the back office mounts them with this
`issue` in place of the plain one, so chip and books are written together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cardio import cli as card_cli
from cardio.softcard import SoftCard
from clearing.cli.registry_cmd import ACTOR, _run, _valid
from clearing.registry import service
from clearing.registry.schemas import CardIssue
from clearing.settings import get_settings
from ledger.errors import invariant
from ledger.port import LedgerPort


def issue(
    out: card_cli.OutOption,
    number: card_cli.NumberOption,
    card_type: card_cli.TypeOption = "adult",
    balance: card_cli.BalanceOption = 0,
    holder: card_cli.HolderOption = "",
    id_number: card_cli.IdNumberOption = "",
    valid_years: card_cli.ValidYearsOption = 10,
    keys_path: card_cli.KeysOption = None,
    create_keys: card_cli.CreateKeysOption = False,
    force: card_cli.ForceOption = False,
    register: Annotated[
        bool,
        typer.Option(
            "--register",
            help="Also open the card's books (as `registry card issue` does): the deposit "
            "and the --balance as first load are paid in; the card file is written only "
            "if the books accept it.",
        ),
    ] = False,
    holder_id: Annotated[
        str, typer.Option("--holder-id", help="With --register: the resident's id.")
    ] = "",
    deposit: Annotated[
        int, typer.Option("--deposit", help="With --register: deposit in fen.", min=0)
    ] = 2000,
    paid_by: Annotated[
        str, typer.Option("--paid-by", help="With --register: cash or bank.")
    ] = "cash",
    scheme: Annotated[
        str | None,
        typer.Option("--scheme", help="With --register: medical-insurance scheme."),
    ] = None,
    valid_from: card_cli.ValidFromOption = "",
) -> None:
    """Personalise a software card: number, type, holder, validity, keys from the key store.

    With --register it also opens the card's books: chip and books agree.
    """
    keys_path = keys_path or get_settings().key_store  # ONECARD_KEY_STORE, or .env
    if not register:
        card_cli.issue(
            out,
            number,
            card_type,
            balance,
            holder,
            id_number,
            valid_years,
            keys_path,
            create_keys,
            force,
            valid_from,
        )
        return
    request = card_cli.issue_request(
        out,
        number,
        card_type,
        balance,
        holder,
        id_number,
        valid_years,
        valid_from,
        keys_path,
        create_keys,
        force,
    )
    books = _registration(
        number, request.kind.label, holder, holder_id, deposit, balance, paid_by, scheme
    )
    card = card_cli.personalise(request)
    _register_and_save(card, books, out)
    Console().print(
        card_cli.issued_line(card, request)
        + f"; books opened (deposit {card_cli.money(deposit)}, first load "
        f"{card_cli.money(balance)}, paid by {paid_by})"
    )


def build_card_app() -> typer.Typer:
    """cardio's `card` commands with this `issue`."""
    return card_cli.build_card_app(issue=issue)


def _registration(
    number: str,
    card_type: str,
    holder: str,
    holder_id: str,
    deposit_fen: int,
    load_fen: int,
    paid_by: str,
    scheme: str | None,
) -> CardIssue:
    """The registry's request for this card, checked by the API's own schema (exit 2 if not)."""
    if not holder_id:
        raise typer.BadParameter("--register needs --holder-id", param_hint="--holder-id")
    if not holder:
        raise typer.BadParameter("--register needs --holder (the name)", param_hint="--holder")
    return _valid(
        CardIssue,
        card_no=number,
        card_type=card_type,
        holder_id=holder_id,
        holder_name=holder,
        deposit_fen=deposit_fen,
        first_load_fen=load_fen,
        paid_by=paid_by,
        scheme=scheme,
    )


def _register_and_save(card: SoftCard, body: CardIssue, out: Path) -> None:
    """Open the books and write the card file as one step: the file is written (beside `out`)
    inside the registry's transaction and renamed into place after the commit, so a refusal of
    the books leaves no card file, and a failed file write leaves no books."""
    invariant(card.card_no == body.card_no, "chip and books name the same card")
    invariant(card.balance_fen == body.first_load_fen, "chip balance is the first load")
    staged = out.with_name(f".{out.name}.issuing")

    async def work(session: Any, ledger: LedgerPort | None) -> None:
        await service.issue_card(session, ledger, body, ACTOR)
        card.save(staged)

    try:
        _run(work, with_ledger=True)
        staged.replace(out)
    except OSError as error:  # the card file cannot be written: the books rolled back
        Console(stderr=True).print(f"[red]error:[/red] cannot write {out}: {error.strerror}")
        raise typer.Exit(1) from None
    finally:
        if staged.exists():  # False too when its folder is a file: nothing to clean up
            staged.unlink()
