"""`onecard card ...`: create a key store, issue a software card, read any purse card, attach a
card to vpcd. The card layer's own command line: it imports nothing above cardio, so a terminal
installed without the back office has it.

Commands parse arguments, call cardio and print; they never print key material. The back office
mounts `build_card_app(issue=...)` with an `issue` that can also open the card's books
(`--register`); the plain `issue` here writes the chip only.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cardio.crypto import Algorithm
from cardio.errors import CardioError, KeyStoreError, TransportError
from cardio.inproc import InProcessTransport
from cardio.keystore import KeyKind, create_key_store, load_key_store, write_key_store
from cardio.money import yuan
from cardio.oneline import OneLineGroup, run
from cardio.purse import Purse
from cardio.records import CardType
from cardio.softcard import SoftCard
from cardio.vpcd import VpcdBridge, parse_host_port

RECONNECT_PAUSE_S = 0.5
RECONNECT_TRIES_MAX = 600  # five minutes of pcscd being away, then give up
KEY_STORE_ENV = "ONECARD_KEY_STORE"
KEY_STORE_DEFAULT = Path("var/keys.json")  # the back office's settings use the same default

# The options of `card issue`, shared with the back office's `card issue --register`.
OutOption = Annotated[Path, typer.Option("--out", help="The card file to write (CARD.json).")]
NumberOption = Annotated[str, typer.Option("--number", help="Card number: 16 digits.")]
TypeOption = Annotated[str, typer.Option("--type", help="adult, student, senior or disabled.")]
BalanceOption = Annotated[int, typer.Option("--balance", help="Opening balance in fen.", min=0)]
HolderOption = Annotated[str, typer.Option("--holder", help="Cardholder name.")]
IdNumberOption = Annotated[str, typer.Option("--id-number", help="ID document number.")]
ValidYearsOption = Annotated[
    int, typer.Option("--valid-years", help="Validity from today.", min=1, max=50)
]
KeysOption = Annotated[
    Path | None, typer.Option("--keys", help="Issuer key store (default: ONECARD_KEY_STORE).")
]
CreateKeysOption = Annotated[
    bool, typer.Option("--create-keys", help="Create the key store with random keys if missing.")
]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite an existing card file.")]
ValidFromOption = Annotated[
    str, typer.Option("--valid-from", help="First valid day YYYY-MM-DD (default today).")
]


def key_store_path() -> Path:
    """The issuer key store: ONECARD_KEY_STORE, else var/keys.json (as the back office's)."""
    return Path(os.environ.get(KEY_STORE_ENV) or KEY_STORE_DEFAULT)


def money(fen: int) -> str:
    return f"¥{yuan(fen)}"


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True)
class IssueRequest:
    """A checked `card issue`: what to write on the chip, and where."""

    out: Path
    number: str
    kind: CardType
    balance_fen: int
    holder: str
    id_number: str
    valid_from: date
    valid_until: date
    keys_path: Path
    create_keys: bool


def issue_request(
    out: Path,
    number: str,
    card_type: str,
    balance: int,
    holder: str,
    id_number: str,
    valid_years: int,
    valid_from: str,
    keys_path: Path | None,
    create_keys: bool,
    force: bool,
) -> IssueRequest:
    """The options checked (exit 2 naming the option if one is wrong)."""
    try:
        kind = CardType.from_label(card_type)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--type") from None
    if out.is_dir():  # never replaceable: with --register the books would open, no card
        raise typer.BadParameter(
            f"{out} is a folder: name the card file, e.g. {out / 'CARD.json'}",
            param_hint="--out",
        )
    if out.exists() and not force:
        raise typer.BadParameter(f"{out} exists (use --force to replace it)", param_hint="--out")
    try:
        first_day = date.fromisoformat(valid_from) if valid_from else date.today()
    except ValueError:
        raise typer.BadParameter("a day is YYYY-MM-DD", param_hint="--valid-from") from None
    return IssueRequest(
        out,
        number,
        kind,
        balance,
        holder,
        id_number,
        first_day,
        _years_later(first_day, valid_years),
        keys_path or key_store_path(),
        create_keys,
    )


def personalise(request: IssueRequest) -> SoftCard:
    """The card, keyed from the key store (created first with --create-keys); not yet saved."""
    try:
        if request.create_keys and not request.keys_path.exists():
            store = create_key_store(request.keys_path)
        else:
            store = load_key_store(request.keys_path)
        return SoftCard.issue(
            store,
            request.number,
            request.kind,
            holder_name=request.holder,
            id_number=request.id_number,
            balance_fen=request.balance_fen,
            valid_from=request.valid_from,
            valid_until=request.valid_until,
        )
    except CardioError as error:
        Console(stderr=True).print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(1) from None


def issued_line(card: SoftCard, request: IssueRequest) -> str:
    return (
        f"[green]issued card {card.card_no}[/green] ({request.kind.label}, "
        f"{money(request.balance_fen)}) to {request.out}"
    )


def issue(
    out: OutOption,
    number: NumberOption,
    card_type: TypeOption = "adult",
    balance: BalanceOption = 0,
    holder: HolderOption = "",
    id_number: IdNumberOption = "",
    valid_years: ValidYearsOption = 10,
    keys_path: KeysOption = None,
    create_keys: CreateKeysOption = False,
    force: ForceOption = False,
    valid_from: ValidFromOption = "",
) -> None:
    """Personalise a software card: number, type, holder, validity, keys from the key store.

    The chip only: `onecard card issue --register` (the back office) also opens its books.
    """
    request = issue_request(
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
    card = personalise(request)
    try:
        card.save(out)
    except CardioError as error:
        Console(stderr=True).print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(1) from None
    Console().print(issued_line(card, request) + "; the chip only (--register opens its books too)")


def keys(
    out: Annotated[
        Path | None, typer.Option("--out", help="Key store file (default: ONECARD_KEY_STORE).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key store.")] = False,
    algorithm: Annotated[
        str,
        typer.Option(
            "--algorithm",
            help="3des (interoperable, default) or sm4 (onecard's own profile, our cards only).",
        ),
    ] = "3des",
    source: Annotated[
        Path | None,
        typer.Option("--from", help="Copy from this key store instead of creating keys."),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="With --from: keep only this kind (purchase, load, tac, maintenance); "
            "repeatable. E.g. --only tac for the clearing service.",
        ),
    ] = None,
) -> None:
    """Create an issuer key store with random master keys (file mode 0600), or write a
    least-privilege copy of one (--from ... --only tac)."""
    choices = {"3des": Algorithm.TDES, "sm4": Algorithm.SM4}
    if algorithm.lower() not in choices:
        raise typer.BadParameter("3des or sm4", param_hint="--algorithm")
    path = out or key_store_path()
    if path.is_dir():  # `--out ""` is the current folder: never a key store, even --force
        raise typer.BadParameter(
            f"{path} is a folder: name the key store file, e.g. {path / 'keys.json'}",
            param_hint="--out",
        )
    try:
        if source is not None:
            kinds = [KeyKind(k.lower()) for k in (only or [k.value for k in KeyKind])]
            store = load_key_store(source).only(*kinds)
            write_key_store(store, path, overwrite=force)
        else:
            if only:
                raise typer.BadParameter("--only needs --from", param_hint="--only")
            store = create_key_store(path, algorithm=choices[algorithm.lower()], overwrite=force)
    except ValueError:
        raise typer.BadParameter(
            "one of purchase, load, tac, maintenance", param_hint="--only"
        ) from None
    except KeyStoreError as error:
        Console(stderr=True).print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(1) from None
    kinds = ", ".join(f"{k.kind.value} #{k.index}" for k in store.keys)
    Console().print(f"[green]key store written to {path}[/green] ({kinds}; keys not shown)")


def read(
    reader: Annotated[
        str | None,
        typer.Option(
            "--reader", help="PC/SC reader name (default: the first reader holding a card)."
        ),
    ] = None,
    card_file: Annotated[
        Path | None,
        typer.Option("--card", help="Read a software card file in-process instead of a reader."),
    ] = None,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for a card.", min=0, max=600)
    ] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Read a purse card: public info, holder, balance and last transactions."""

    console = Console()
    try:
        if card_file is not None:
            transport = InProcessTransport(SoftCard.load(card_file))
            source = str(card_file)
        else:
            from cardio.pcsc import PcscTransport, find_card  # pyscard: only for a reader

            if reader is None:
                reader = find_card(timeout_s=wait)
                transport = PcscTransport.open(reader)
            else:
                transport = PcscTransport.open(reader, timeout_s=wait)
            source = reader
        try:
            report = _read_card(Purse(transport))
        finally:
            transport.close()
    except CardioError as error:
        Console(stderr=True).print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(report, ensure_ascii=False, default=str))
        return
    _print_report(console, source, report)


def readers() -> None:
    """List the PC/SC readers pcscd knows and whether a card is in each."""
    from cardio.pcsc import readers_with_card  # pyscard: only for a reader

    try:
        present = readers_with_card()
    except CardioError as error:
        Console(stderr=True).print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(1) from None
    if not present:
        Console().print("no readers (is pcscd running? bash scripts/pcsc.sh start)")
    for name, has_card in present.items():
        typer.echo(f"{name}\t{'card present' if has_card else 'empty'}")


def attach(
    card_file: Annotated[Path, typer.Option("--card", help="The software card file (CARD.json).")],
    vpcd: Annotated[
        str, typer.Option("--vpcd", help="vpcd reader address HOST:PORT.")
    ] = "127.0.0.1:35963",
) -> None:
    """Plug a software card into pcscd through vpcd and serve it until stopped (Ctrl-C).

    The card's state is written back to the file after every change, before the answer goes
    out, so a card pulled mid-transaction keeps what it did.
    """

    console = Console()
    try:
        host, port = parse_host_port(vpcd)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--vpcd") from None
    try:
        card = SoftCard.load(card_file)
    except CardioError as error:
        Console(stderr=True).print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(1) from None

    def persist() -> None:
        card.save(card_file)

    bridge = VpcdBridge(card, host, port, on_change=persist)

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    tries = 0
    try:
        while True:
            try:
                bridge.connect()
            except TransportError as error:
                tries += 1
                if tries > RECONNECT_TRIES_MAX:
                    Console(stderr=True).print(f"[red]error:[/red] {error.message}")
                    raise typer.Exit(1) from None
                if tries == 1:
                    console.print(f"[yellow]{error.message}; retrying[/yellow]")
                time.sleep(RECONNECT_PAUSE_S)  # pcscd is away: poll until it is back
                continue
            tries = 0
            console.print(
                f"card {card.card_no} attached to vpcd {host}:{port} "
                f"(balance {money(card.balance_fen)}); Ctrl-C to remove it"
            )
            bridge.serve()
            console.print("[yellow]vpcd closed the connection; reconnecting[/yellow]")
    except KeyboardInterrupt:
        bridge.pull()
        card.save(card_file)
        console.print(f"card removed; state saved to {card_file}")


def _read_card(purse: Purse) -> dict[str, object]:
    """Public info and balance must read; the optional parts (holder, log, transit record) of a
    foreign card may be missing, protected or laid out differently: shown as unavailable."""
    selected = purse.select_any()
    info = purse.read_public_info()
    report: dict[str, object] = {
        "card_no": info.card_no,
        "issuer_id": info.issuer_id.hex().upper(),
        "card_type": info.card_type.label if info.card_type else f"code {info.card_type_code:02X}",
        "valid_from": info.valid_from.isoformat() if info.valid_from else None,
        "valid_until": info.valid_until.isoformat() if info.valid_until else None,
        "valid_today": info.is_valid_on(date.today()),
        "aid": selected.df_name.hex().upper() if selected.df_name else None,
        "balance_fen": purse.get_balance(),
    }
    try:
        holder = purse.read_holder()
        report["holder"] = holder.name
    except TransportError:
        raise
    except CardioError:
        report["holder"] = None
    try:
        log = purse.read_log()
    except TransportError:
        raise
    except CardioError:
        log = []
    report["transactions"] = [
        {
            "counter": r.counter,
            "type": {2: "load", 6: "purchase", 9: "transit (CAPP)"}.get(
                r.txn_type, f"{r.txn_type:02X}"
            ),
            "amount_fen": r.amount_fen,
            "terminal_id": r.terminal_id.hex().upper(),
            "occurred_at": r.occurred_at.isoformat()
            if isinstance(r.occurred_at, datetime)
            else None,
        }
        for r in log
    ]
    try:
        transit = purse.read_transit_record()
        report["transit"] = {
            "state": transit.state.name.lower(),
            "line": transit.line,
            "stop": transit.stop,
            "tapped_at": transit.tapped_at.isoformat() if transit.tapped_at else None,
            "transfers_used": transit.transfers_used,
        }
    except TransportError:
        raise
    except CardioError:
        report["transit"] = None
    return report


def _print_report(console: Console, source: str, report: dict) -> None:
    # What a card holds is printed as text: a holder named "[/x]" is no markup (nor a crash).
    console.print(f"[bold]card {escape(str(report['card_no']))}[/bold] in {escape(source)}")
    summary = Table(show_header=False, box=None)
    summary.add_row("type", escape(str(report["card_type"])))
    summary.add_row("holder", escape(str(report.get("holder") or "-")))
    summary.add_row("balance", money(int(report["balance_fen"])))  # type: ignore[arg-type]
    summary.add_row(
        "valid",
        f"{report['valid_from'] or '-'} .. {report['valid_until'] or '-'}"
        + ("" if report["valid_today"] else "  [red](not valid today)[/red]"),
    )
    summary.add_row("issuer", escape(str(report["issuer_id"])))
    transit = report.get("transit")
    if transit and transit["state"] != "none":
        summary.add_row(
            "journey",
            escape(f"{transit['state']} line {transit['line']} stop {transit['stop']}"),
        )
    console.print(summary)
    log = Table(title="last transactions")
    for column in ("#", "type", "amount", "terminal", "time"):
        log.add_column(column)
    for row in report["transactions"]:  # type: ignore[union-attr]
        log.add_row(
            str(row["counter"]),
            row["type"],
            money(row["amount_fen"]),
            row["terminal_id"],
            row["occurred_at"] or "-",
        )
    console.print(log)


def build_card_app(issue: Callable[..., Any] = issue) -> typer.Typer:
    """The `card` commands; `issue` may be replaced (the back office's also opens the books)."""
    card_app = typer.Typer(
        help="Cards: key store, issue, read, attach to a reader.", no_args_is_help=True
    )
    card_app.command("keys")(keys)
    card_app.command("issue")(issue)
    card_app.command("read")(read)
    card_app.command("readers")(readers)
    card_app.command("attach")(attach)
    return card_app


class CardGroup(OneLineGroup):
    """`python -m cardio.cli`: the card commands alone, failing in one line."""


app = typer.Typer(cls=CardGroup, no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(build_card_app(), name="card")


def main() -> None:
    run(app, CardGroup.explainers)


if __name__ == "__main__":
    main()
