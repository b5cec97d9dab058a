"""`onecard terminal provision|run|journal`: a real bus validator, clinic counter or load kiosk on a
PC/SC reader. Parses arguments and prints; the terminal logic lives in terminals/.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clearing.cli.failures import say

TAP_WAIT_S = 5.0


class TerminalKindArg(StrEnum):
    BUS = "bus"
    CLINIC = "clinic"
    KIOSK = "kiosk"


terminal_app = typer.Typer(
    help="Run a terminal (bus validator, clinic, load kiosk) on a reader.", no_args_is_help=True
)


@terminal_app.command("provision")
def provision(
    terminal_id: Annotated[
        str, typer.Option("--terminal-id", help="12 hex digits (the SAM's terminal number).")
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Directory for the SAM key file, credential and config.")
    ],
    key_store: Annotated[
        Path | None,
        typer.Option("--key-store", help="Issuer key store (default ONECARD_KEY_STORE)."),
    ] = None,
    with_load: Annotated[
        bool, typer.Option("--with-load", help="Also the load key (a load kiosk).")
    ] = False,
    clearing_url: Annotated[str, typer.Option("--clearing-url")] = "",
    server_public_key: Annotated[str, typer.Option("--server-public-key")] = "",
    route_id: Annotated[str, typer.Option("--route")] = "1",
    stop_id: Annotated[str, typer.Option("--stop")] = "old_town",
) -> None:
    """Make a terminal's SAM key file (purchase key only, or + load key), credential and config."""
    from cardio.errors import CardioError
    from cardio.keystore import load_key_store
    from clearing.settings import get_settings
    from terminals.config import is_terminal_id, provision_terminal
    from terminals.errors import TerminalError

    if not is_terminal_id(terminal_id.upper()):
        raise typer.BadParameter("12 hex digits, e.g. 000001000050", param_hint="--terminal-id")
    path = key_store or get_settings().key_store
    try:
        issuer = load_key_store(path)
        config, public_key = provision_terminal(
            issuer,
            terminal_id,
            out_dir,
            with_load=with_load,
            clearing_url=clearing_url,
            server_public_key=server_public_key,
            route_id=route_id,
            stop_id=stop_id,
        )
    except (CardioError, TerminalError) as error:
        say(error.message)
        raise typer.Exit(1) from None
    typer.echo(f"config: {config}")
    typer.echo(f"register this terminal with public key {public_key}")


@terminal_app.command("journal")
def journal_summary(
    config_path: Annotated[
        Path, typer.Option("--config", help="The terminal's TOML configuration.")
    ],
) -> None:
    """Show the journal's counts: records, grey, uploaded, sequence holes."""
    from terminals.config import load_config
    from terminals.errors import TerminalError
    from terminals.journal import Journal

    try:
        config = load_config(config_path)
        journal = Journal(config.journal_path, config.terminal_id)
    except TerminalError as error:
        say(error.message)
        raise typer.Exit(1) from None
    try:
        stats = journal.stats()
        holes = journal.sequence_holes()
    finally:
        journal.close()
    typer.echo(
        f"records {stats.records} (seq {stats.first_seq}..{stats.last_seq}), complete {stats.complete}, "
        f"grey {stats.grey}, not debited {stats.not_debited}, uploaded {stats.uploaded}, "
        f"pending {stats.pending_upload}, holes {holes}"
    )


@terminal_app.command("run")
def run(
    kind: Annotated[TerminalKindArg, typer.Argument(help="bus, clinic or kiosk")],
    reader: Annotated[
        str, typer.Option("--reader", help="PC/SC reader name, e.g. 'Virtual PCD 00 01'.")
    ],
    config_path: Annotated[
        Path, typer.Option("--config", help="The terminal's TOML configuration.")
    ],
    once: Annotated[bool, typer.Option("--once", help="Serve one card, then exit.")] = False,
    visit: Annotated[
        str, typer.Option("--visit", help="clinic: VISIT_ID:BILL_FEN (else asked per card).")
    ] = "",
) -> None:
    """Serve cards on a PC/SC reader until stopped (Ctrl-C); uploads run in the background."""
    from cardio.errors import CardioError, NoCard, TransportError
    from cardio.pcsc import PcscTransport, wait_for_card, wait_for_removal
    from terminals.client import ClearingClient
    from terminals.config import load_config
    from terminals.errors import FeedInvalid, TerminalError
    from terminals.journal import Journal
    from terminals.kiosk import LoadKiosk
    from terminals.lists import ListStore
    from terminals.sam import LoadHost, Psam, SoftwareSam, load_sam_keys
    from terminals.signing import load_credential
    from terminals.terminal import ClinicTerminal, ClinicVisit, Validator
    from terminals.uploader import Uploader

    console = Console()
    try:
        config = load_config(config_path)
        keys = load_sam_keys(config.sam_keys)
        credential = load_credential(config.credential)
    except TerminalError as error:
        Console(stderr=True).print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(1) from None
    config.data_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal(config.journal_path, config.terminal_id)
    lists = ListStore(config.lists_path, config.server_public_key)
    sam = SoftwareSam(keys, config.sam_serial_path)
    if config.sam_reader:
        # A PSAM in a reader slot: its serial is its own; a lost one is filled at the next tap.
        psam = Psam(PcscTransport.open(config.sam_reader))
    else:
        psam = Psam(sam)
        filled = journal.reconcile(sam.last_serial)
        if filled:
            console.print(
                f"[yellow]recovered {filled} serial(s) the SAM gave out before a power cut[/yellow]"
            )

    def client() -> ClearingClient:
        assert config.clearing_url is not None
        return ClearingClient(config.clearing_url, credential)

    uploader = Uploader(journal, lists, client) if config.clearing_url else None
    wake = uploader.wake if uploader else None
    if kind is TerminalKindArg.BUS:
        try:
            feed = config.load_feed()
        except FeedInvalid as refused:
            for problem in refused.problems:
                Console(stderr=True).print(str(problem))
            Console(stderr=True).print("[red]error:[/red] the fare feed is refused; fix it first")
            journal.close()
            raise typer.Exit(1) from None
        terminal: object = Validator(
            journal,
            psam,
            feed,
            lists,
            config.route_id,
            config.stop_id,
            purchase_key_index=keys.purchase.index,
            on_record=wake,
        )
    elif kind is TerminalKindArg.CLINIC:
        terminal = ClinicTerminal(
            journal,
            psam,
            lists,
            client if config.clearing_url else None,
            purchase_key_index=keys.purchase.index,
            on_record=wake,
        )
    else:
        from terminals.sam import SerialStore

        terminal = LoadKiosk(
            journal,
            LoadHost(keys),
            SerialStore(config.sam_serial_path),
            lists,
            load_key_index=keys.load.index if keys.load else 1,
            on_record=wake,
        )
    if uploader:
        uploader.start()

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    console.print(
        f"{kind.value} terminal {config.terminal_id} on {reader!r}; present a card (Ctrl-C stops)"
    )
    try:
        while True:
            try:
                wait_for_card(reader, TAP_WAIT_S)
            except NoCard:
                continue
            except CardioError as error:
                Console(stderr=True).print(f"[red]error:[/red] {error.message}")
                raise typer.Exit(1) from None
            try:
                transport = PcscTransport.open(reader)
            except TransportError:
                continue
            try:
                if isinstance(terminal, Validator):
                    result = terminal.tap(transport)
                    line = f"{result.outcome.value}: {result.message}"
                elif isinstance(terminal, ClinicTerminal):
                    visit_id, bill = _visit(visit)
                    result = terminal.charge(transport, ClinicVisit(visit_id, bill))
                    line = f"{result.outcome.value}: {result.message}"
                else:
                    assert isinstance(terminal, LoadKiosk)
                    loaded = terminal.deliver(transport)
                    line = f"{loaded.outcome.value}: {loaded.message}"
            finally:
                transport.close()
            console.print(f"{datetime.now(UTC):%H:%M:%S} {line}")
            if once:
                break
            try:
                wait_for_removal(reader, 60.0)
            except CardioError:
                continue
    except KeyboardInterrupt:
        console.print("stopping")
    except TerminalError as error:
        # e.g. the journal cannot be written: no ride may be sold without its record.
        Console(stderr=True).print(f"[red]terminal stopped:[/red] {error.code}: {error.message}")
        raise typer.Exit(2) from None
    finally:
        if uploader:
            uploader.stop()
        journal.close()


def _visit(option: str) -> tuple[str, int]:
    text = option or typer.prompt("visit (VISIT_ID:BILL_FEN)")
    visit_id, _, bill = text.partition(":")
    if not visit_id or not bill.isdigit() or int(bill) <= 0:
        raise typer.BadParameter("a visit is VISIT_ID:BILL_FEN with a positive bill in fen")
    return visit_id, int(bill)


def register(app: typer.Typer) -> None:
    app.add_typer(terminal_app, name="terminal")
