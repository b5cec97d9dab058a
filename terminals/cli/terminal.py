"""`onecard terminal provision|run|journal|simulate`: a real bus validator, clinic counter or load
kiosk on a PC/SC reader. Parses arguments and prints; the terminal logic lives in terminals/.

It imports nothing above terminals and cardio: a validator installed with
`pip install "onecard[terminal]"` runs it without the back office.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.table import Table

from cardio.cli import key_store_path
from cardio.errors import CardioError
from cardio.keystore import load_key_store
from cardio.money import yuan
from cardio.oneline import say
from cardio.softcard import SoftCard
from terminals.client import (
    ClearingClient,
    KeyRefused,
    fetch_list_public_key,
    key_fingerprint,
    valid_public_key_hex,
)
from terminals.config import is_terminal_id, load_config, provision_terminal
from terminals.errors import FeedInvalid, TerminalError, invariant
from terminals.fleet import TAPS_PER_RUN_MAX as TAPS_MAX
from terminals.fleet import drive, open_bus, plan_taps
from terminals.journal import Journal
from terminals.kiosk import LoadKiosk
from terminals.lists import ListStore
from terminals.sam import LoadHost, Psam, SerialStore, SoftwareSam, load_sam_keys
from terminals.signing import load_credential
from terminals.terminal import ClinicTerminal, ClinicVisit, Validator
from terminals.uploader import Uploader

if TYPE_CHECKING:
    from cardio.apdu import Transport
    from terminals.config import TerminalConfig
    from terminals.fleet import BusDay
    from terminals.reader_loop import StopRequest  # imports pyscard: loaded by `run` only
    from terminals.sam import SamKeys
    from terminals.signing import TerminalCredential

UPLOADER_STOP_S = 1.0  # an upload in flight is re-sent byte for byte at the next start
UPLOADER_THREAD = "onecard-uploader"  # terminals.uploader names its thread so
# The business day of `terminal simulate`: the clearing service reads the same variables.
TIME_ZONE_ENV = "ONECARD_BUSINESS_TIME_ZONE"
TIME_ZONE_DEFAULT = "Asia/Shanghai"
CUTOFF_ENV = "ONECARD_SETTLEMENT_CUTOFF"
CUTOFF_DEFAULT = "04:00"


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
    clearing_url: Annotated[
        str, typer.Option("--clearing-url", help="The clearing service (uploads, lists).")
    ] = "",
    server_public_key: Annotated[
        str,
        typer.Option(
            "--server-public-key",
            help="The service's list-signing key, 64 hex (default: fetched from --clearing-url "
            "and pinned).",
        ),
    ] = "",
    server_key_fingerprint: Annotated[
        str,
        typer.Option(
            "--server-key-fingerprint",
            help="Refuse the server key unless it has this fingerprint (as `onecard serve` "
            "prints it, SHA256:...).",
        ),
    ] = "",
    route_id: Annotated[str, typer.Option("--route")] = "1",
    stop_id: Annotated[str, typer.Option("--stop")] = "old_town",
) -> None:
    """Make a terminal's SAM key file (purchase key only, or + load key), credential and config.

    Without --server-public-key the key is fetched from --clearing-url and pinned.
    """

    if not is_terminal_id(terminal_id.upper()):
        raise typer.BadParameter("12 hex digits, e.g. 000001000050", param_hint="--terminal-id")
    path = key_store or key_store_path()
    fetched = not server_public_key and bool(clearing_url)
    try:
        if server_public_key:
            server_public_key = valid_public_key_hex(server_public_key)
            _check_fingerprint(server_public_key, server_key_fingerprint)
        elif clearing_url:
            server_public_key = fetch_list_public_key(
                clearing_url, expected_fingerprint=server_key_fingerprint
            )
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
    if server_public_key:
        how = f"fetched from {clearing_url} and pinned" if fetched else "given"
        if server_key_fingerprint:
            how += ", fingerprint as expected"
        typer.echo(f"server list-signing key ({how}): {key_fingerprint(server_public_key)}")
    else:
        typer.echo("no server key: this terminal accepts no deny or action list")
    typer.echo(f"register this terminal with public key {public_key} (also in public-key.hex)")


def _check_fingerprint(public_key_hex: str, expected: str) -> None:

    if expected and key_fingerprint(public_key_hex) != expected.strip():
        raise KeyRefused(
            f"--server-public-key has fingerprint {key_fingerprint(public_key_hex)}, "
            f"not {expected.strip()}"
        )


@terminal_app.command("simulate")
def simulate(
    configs: Annotated[
        list[Path],
        typer.Option("--config", help="A provisioned terminal's terminal.toml (repeatable)."),
    ],
    card_paths: Annotated[
        list[Path],
        typer.Option("--cards", help="A card file, or a directory of them (repeatable)."),
    ],
    taps: Annotated[
        int,
        typer.Option("--taps", help="Taps in the span (0: only upload).", min=0, max=TAPS_MAX),
    ] = 100,
    day: Annotated[
        str,
        typer.Option("--day", help="Business day YYYY-MM-DD (default: the last closed one)."),
    ] = "",
    first: Annotated[str, typer.Option("--from", help="Local time of the first tap.")] = "07:00",
    last: Annotated[str, typer.Option("--to", help="Local time the span ends.")] = "19:00",
    seed: Annotated[int, typer.Option("--seed", help="The same seed, the same taps.")] = 0,
    time_zone: Annotated[
        str,
        typer.Option(
            "--time-zone",
            envvar=TIME_ZONE_ENV,
            help="The business day's zone (as the clearing service's).",
        ),
    ] = TIME_ZONE_DEFAULT,
    cutoff: Annotated[
        str,
        typer.Option(
            "--cutoff",
            envvar=CUTOFF_ENV,
            help="HH:MM that closes a business day (as the clearing service's).",
        ),
    ] = CUTOFF_DEFAULT,
) -> None:
    """Tap card files on provisioned buses in-process, and upload: no reader needed.

    N taps at random times of the span, priced by each bus's fare feed and journaled.

    Uploads go through each bus's own uploader; card files are saved after every tap.

    Exit 1 if a record stays unsent (run again with --taps 0).
    """

    files = _card_files(card_paths)
    start, end = _span(day, first, last, _zone(time_zone), _cutoff(cutoff))
    console = Console()
    buses = []
    try:
        cards = [_load_card(path) for path in files]
        terminals = [load_config(path) for path in configs]
        if len({config.terminal_id for config in terminals}) != len(terminals):
            # One SAM serial and one journal per terminal: two drivers would repeat serials.
            raise typer.BadParameter("a terminal is named twice", param_hint="--config")
        for config in terminals:
            buses.append(open_bus(config))
        before_fen = sum(card.balance_fen for card in cards)
        console.print(
            f"{len(buses)} terminal(s), {len(cards)} card(s), {taps} taps from "
            f"{start:%Y-%m-%d %H:%M} to {end:%H:%M} {start.tzname()}"
        )
        plan = plan_taps(taps, len(cards), len(buses), start, end, seed) if taps else []
        reports = drive(buses, cards, plan, after_tap=lambda i: cards[i].save(files[i]), seed=seed)
        pending = [bus.journal.stats().pending_upload for bus in buses]
    except (CardioError, TerminalError) as error:
        Console(stderr=True).print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(1) from None
    finally:
        for bus in buses:
            bus.journal.close()
    after_fen = sum(card.balance_fen for card in cards)
    _print_simulation(console, reports, pending, before_fen - after_fen, start.date())
    errors = [f"{bus.terminal_id}: {bus.last_error}" for bus in buses if bus.last_error]
    if sum(pending) or errors:
        for line in errors:
            Console(stderr=True).print(f"[red]upload failed[/red] {line}")
        Console(stderr=True).print(
            f"{sum(pending)} record(s) not uploaded; they stay in the journals: run again "
            "with --taps 0 once the service answers"
        )
        raise typer.Exit(1)


def _card_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.glob("*.json") if not p.name.startswith(".")))
        elif path.exists():
            files.append(path)
        else:
            raise typer.BadParameter(f"{path} does not exist", param_hint="--cards")
    if not files:
        raise typer.BadParameter("no card files (*.json) found", param_hint="--cards")
    if len(set(files)) != len(files):
        raise typer.BadParameter("a card file is named twice", param_hint="--cards")
    return files


def _load_card(path: Path) -> SoftCard:

    return SoftCard.load(path)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(f"no time zone {name!r}", param_hint="--time-zone") from None


def _cutoff(text: str) -> time:
    try:
        hours, minutes = text.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise typer.BadParameter("HH:MM (24 h)", param_hint="--cutoff") from None


def last_closed_day(now: datetime, zone: ZoneInfo, cutoff: time) -> date:
    """The business day before the one `now` falls in (a day runs from cut-off to cut-off)."""
    local = now.astimezone(zone).replace(tzinfo=None)
    opened = local - timedelta(hours=cutoff.hour, minutes=cutoff.minute)
    return opened.date() - timedelta(days=1)


def _span(
    day: str, first: str, last: str, zone: ZoneInfo, cutoff: time
) -> tuple[datetime, datetime]:
    """The span's aware start and end on the business day (the back office's zone)."""
    try:
        business_day = (
            date.fromisoformat(day) if day else last_closed_day(datetime.now(UTC), zone, cutoff)
        )
    except ValueError:
        raise typer.BadParameter("a day is YYYY-MM-DD", param_hint="--day") from None
    try:
        start_at, end_at = time.fromisoformat(first), time.fromisoformat(last)
    except ValueError:
        raise typer.BadParameter("times are HH:MM", param_hint="--from/--to") from None
    if end_at <= start_at:
        raise typer.BadParameter("--to must be after --from", param_hint="--to")
    return (
        datetime.combine(business_day, start_at, tzinfo=zone),
        datetime.combine(business_day, end_at, tzinfo=zone),
    )


def _print_simulation(
    console: Console, reports: list[BusDay], pending: list[int], spent_fen: int, day: date
) -> None:

    table = Table(title=f"simulated taps, business day {day}", title_justify="left")
    table.add_column("terminal", no_wrap=True, min_width=12)  # ids are never cut
    for header in ("route", "taps", "paid", "refused", "fares CNY", "uploaded"):
        table.add_column(header, justify="left" if header == "route" else "right")
    table.add_column("pending", justify="right")
    for report, left in zip(reports, pending, strict=True):
        table.add_row(
            report.terminal_id,
            report.route_id,
            str(report.taps),
            str(report.paid),
            str(sum(report.refused.values())),
            yuan(report.fares_fen),
            str(report.records_uploaded),
            str(left),
        )
    table.add_row(
        "all",
        "",
        str(sum(r.taps for r in reports)),
        str(sum(r.paid for r in reports)),
        str(sum(sum(r.refused.values()) for r in reports)),
        yuan(sum(r.fares_fen for r in reports)),
        str(sum(r.records_uploaded for r in reports)),
        str(sum(pending)),
        style="bold",
    )
    console.print(table)
    refused: dict[str, int] = {}
    for report in reports:
        for reason, count in report.refused.items():
            refused[reason] = refused.get(reason, 0) + count
    for reason, count in sorted(refused.items()):
        console.print(f"  refused [yellow]{reason}[/yellow]: {count}")
    if refused.get("not_valid"):
        console.print(f"  (a card not valid on {day}: issue it with --valid-from {day} or earlier)")
    console.print(f"cards paid {yuan(spent_fen)} in all (their files are saved)")


@terminal_app.command("journal")
def journal_summary(
    config_path: Annotated[
        Path, typer.Option("--config", help="The terminal's TOML configuration.")
    ],
) -> None:
    """Show the journal's counts: records, grey, uploaded, sequence holes."""

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
    """Serve cards on a PC/SC reader until stopped; uploads run in the background.

    Ctrl-C or SIGTERM stops it within a second (after the card being served), exit 0.
    """
    # pyscard (the `terminal` extra) is loaded only by the commands that use a reader.
    from terminals.reader_loop import StopRequest, serve_reader, stop_on_signals

    console = Console()
    try:
        config = load_config(config_path)
        keys = load_sam_keys(config.sam_keys)
        credential = load_credential(config.credential)
    except TerminalError as error:
        Console(stderr=True).print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(1) from None
    stop = StopRequest()
    code = 0
    # Handlers first: a signal at any later point, even during start-up, stops cleanly.
    with stop_on_signals(stop):
        journal, uploader, serve_card = _open_terminal(
            console, kind, config, keys, credential, visit, stop
        )
        try:
            console.print(
                f"{kind.value} terminal {config.terminal_id} on {reader!r}; present a card "
                "(Ctrl-C or SIGTERM stops)"
            )
            serve_reader(
                reader,
                serve_card,
                stop,
                once=once,
                on_line=lambda line: console.print(f"{datetime.now(UTC):%H:%M:%S} {line}"),
            )
        except (KeyboardInterrupt, typer.Abort):
            # The visit prompt ended (click turns the interrupt into Abort): nothing charged.
            if not stop.is_set():
                Console(stderr=True).print("[red]error:[/red] no visit was given")
                code = 1
        except CardioError as error:
            Console(stderr=True).print(f"[red]error:[/red] {error.message}")
            code = 1
        except TerminalError as error:
            # e.g. the journal cannot be written: no ride may be sold without its record.
            Console(stderr=True).print(
                f"[red]terminal stopped:[/red] {error.code}: {error.message}"
            )
            code = 2
        finally:
            _shut_down(console, uploader, journal, stop.signal_name)
    if code:
        raise typer.Exit(code)


def _open_terminal(
    console: Console,
    kind: TerminalKindArg,
    config: TerminalConfig,
    keys: SamKeys,
    credential: TerminalCredential,
    visit: str,
    stop: StopRequest,
) -> tuple[Journal, Uploader | None, Callable[[Transport], str]]:
    """The journal, the started uploader (if any) and what serves one card on this terminal."""
    from cardio.pcsc import PcscTransport  # pyscard: only where a reader is used

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
    clearing_url = config.clearing_url

    def client() -> ClearingClient:
        invariant(clearing_url is not None, "a client needs a clearing URL")
        return ClearingClient(str(clearing_url), credential)

    uploader = Uploader(journal, lists, client) if clearing_url else None
    try:
        serve_card = _card_server(
            kind,
            config,
            keys,
            journal,
            lists,
            psam,
            client if clearing_url else None,
            uploader.wake if uploader else None,
            visit,
            stop,
        )
    except FeedInvalid as refused:
        for problem in refused.problems:
            Console(stderr=True).print(str(problem))
        Console(stderr=True).print("[red]error:[/red] the fare feed is refused; fix it first")
        journal.close()
        raise typer.Exit(1) from None
    if uploader:
        uploader.start()
    return journal, uploader, serve_card


def _card_server(
    kind: TerminalKindArg,
    config: TerminalConfig,
    keys: SamKeys,
    journal: Journal,
    lists: ListStore,
    psam: Psam,
    client: Callable[[], ClearingClient] | None,
    wake: Callable[[], None] | None,
    visit: str,
    stop: StopRequest,
) -> Callable[[Transport], str]:
    """What serves one card on this kind of terminal; returns the line to show."""

    if kind is TerminalKindArg.BUS:
        bus = Validator(
            journal,
            psam,
            config.load_feed(),
            lists,
            config.route_id,
            config.stop_id,
            vehicle_id=config.vehicle_id,
            purchase_key_index=keys.purchase.index,
            on_record=wake,
        )

        def tap(transport: Transport) -> str:
            result = bus.tap(transport)
            return f"{result.outcome.value}: {result.message}"

        return tap
    if kind is TerminalKindArg.CLINIC:
        clinic = ClinicTerminal(
            journal, psam, lists, client, purchase_key_index=keys.purchase.index, on_record=wake
        )

        def charge(transport: Transport) -> str:
            with stop.interruptible():  # a signal at the prompt ends it: nothing charged yet
                visit_id, bill = _visit(visit)
            charged = clinic.charge(transport, ClinicVisit(visit_id, bill))
            return f"{charged.outcome.value}: {charged.message}"

        return charge
    kiosk = LoadKiosk(
        journal,
        LoadHost(keys),
        SerialStore(config.sam_serial_path),
        lists,
        load_key_index=keys.load.index if keys.load else 1,
        on_record=wake,
    )

    def deliver(transport: Transport) -> str:
        loaded = kiosk.deliver(transport)
        return f"{loaded.outcome.value}: {loaded.message}"

    return deliver


def _shut_down(
    console: Console, uploader: Uploader | None, journal: Journal, signal_name: str | None
) -> None:
    """Stop the uploader, then close the journal; say so (a service manager's log shows it)."""
    if signal_name:
        console.print(f"stopping on {signal_name}")
    if uploader:
        uploader.stop(timeout_s=UPLOADER_STOP_S)
        if any(t.name == UPLOADER_THREAD and t.is_alive() for t in threading.enumerate()):
            console.print("uploader still sending: its batch is sent again at the next start")
        else:
            console.print("uploader stopped")
    journal.close()
    console.print("journal closed")


def _visit(option: str) -> tuple[str, int]:
    text = option or typer.prompt("visit (VISIT_ID:BILL_FEN)")
    visit_id, _, bill = text.partition(":")
    if not visit_id or not bill.isdigit() or int(bill) <= 0:
        raise typer.BadParameter("a visit is VISIT_ID:BILL_FEN with a positive bill in fen")
    return visit_id, int(bill)
