"""`onecard card ...`: create a key store, issue a software card, read any purse card, attach a card to vpcd.

Commands parse arguments, call cardio and print; they never print key material.
"""

from __future__ import annotations

import json
import signal
import time
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from clearing.cli.money import yuan
from clearing.settings import get_settings
from ledger.errors import invariant

if TYPE_CHECKING:
    from cardio.purse import Purse
    from cardio.softcard import SoftCard
    from clearing.registry.schemas import CardIssue

RECONNECT_PAUSE_S = 0.5
RECONNECT_TRIES_MAX = 600  # five minutes of pcscd being away, then give up


def _yuan(fen: int) -> str:
    return f"¥{yuan(fen)}"


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def register(app: typer.Typer) -> None:
    card_app = typer.Typer(
        help="Cards: key store, issue, read, attach to a reader.", no_args_is_help=True
    )

    @card_app.command("keys")
    def keys(
        out: Annotated[
            Path | None, typer.Option("--out", help="Key store file (default: ONECARD_KEY_STORE).")
        ] = None,
        force: Annotated[
            bool, typer.Option("--force", help="Replace an existing key store.")
        ] = False,
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
        from cardio.crypto import Algorithm
        from cardio.errors import KeyStoreError
        from cardio.keystore import KeyKind, create_key_store, load_key_store, write_key_store

        choices = {"3des": Algorithm.TDES, "sm4": Algorithm.SM4}
        if algorithm.lower() not in choices:
            raise typer.BadParameter("3des or sm4", param_hint="--algorithm")
        path = out or get_settings().key_store
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
                store = create_key_store(
                    path, algorithm=choices[algorithm.lower()], overwrite=force
                )
        except ValueError:
            raise typer.BadParameter(
                "one of purchase, load, tac, maintenance", param_hint="--only"
            ) from None
        except KeyStoreError as error:
            Console(stderr=True).print(f"[red]error:[/red] {error.message}")
            raise typer.Exit(1) from None
        kinds = ", ".join(f"{k.kind.value} #{k.index}" for k in store.keys)
        Console().print(f"[green]key store written to {path}[/green] ({kinds}; keys not shown)")

    @card_app.command("issue")
    def issue(
        out: Annotated[Path, typer.Option("--out", help="The card file to write (CARD.json).")],
        number: Annotated[str, typer.Option("--number", help="Card number: 16 digits.")],
        card_type: Annotated[
            str, typer.Option("--type", help="adult, student, senior or disabled.")
        ] = "adult",
        balance: Annotated[
            int, typer.Option("--balance", help="Opening balance in fen.", min=0)
        ] = 0,
        holder: Annotated[str, typer.Option("--holder", help="Cardholder name.")] = "",
        id_number: Annotated[str, typer.Option("--id-number", help="ID document number.")] = "",
        valid_years: Annotated[
            int, typer.Option("--valid-years", help="Validity from today.", min=1, max=50)
        ] = 10,
        keys_path: Annotated[
            Path | None,
            typer.Option("--keys", help="Issuer key store (default: ONECARD_KEY_STORE)."),
        ] = None,
        create_keys: Annotated[
            bool,
            typer.Option("--create-keys", help="Create the key store with random keys if missing."),
        ] = False,
        force: Annotated[
            bool, typer.Option("--force", help="Overwrite an existing card file.")
        ] = False,
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
        valid_from: Annotated[
            str, typer.Option("--valid-from", help="First valid day YYYY-MM-DD (default today).")
        ] = "",
    ) -> None:
        """Personalise a software card: number, type, holder, validity, keys from the key store.

        With --register it also opens the card's books: chip and books agree.
        """
        from cardio.errors import CardioError
        from cardio.keystore import create_key_store, load_key_store
        from cardio.records import CardType
        from cardio.softcard import SoftCard

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
            raise typer.BadParameter(
                f"{out} exists (use --force to replace it)", param_hint="--out"
            )
        try:
            first_day = date.fromisoformat(valid_from) if valid_from else date.today()
        except ValueError:
            raise typer.BadParameter("a day is YYYY-MM-DD", param_hint="--valid-from") from None
        books = None
        if register:
            books = _registration(
                number, kind.label, holder, holder_id, deposit, balance, paid_by, scheme
            )
        path = keys_path or get_settings().key_store
        try:
            if create_keys and not Path(path).exists():
                store = create_key_store(path)
            else:
                store = load_key_store(path)
            card = SoftCard.issue(
                store,
                number,
                kind,
                holder_name=holder,
                id_number=id_number,
                balance_fen=balance,
                valid_from=first_day,
                valid_until=_years_later(first_day, valid_years),
            )
            if books is None:
                card.save(out)
        except CardioError as error:
            Console(stderr=True).print(f"[red]error:[/red] {error.message}")
            raise typer.Exit(1) from None
        if books is not None:
            _register_and_save(card, books, out)
        Console().print(
            f"[green]issued card {card.card_no}[/green] ({kind.label}, {_yuan(balance)}) to {out}"
            + (
                f"; books opened (deposit {_yuan(deposit)}, first load {_yuan(balance)}, "
                f"paid by {paid_by})"
                if books is not None
                else "; the chip only (--register opens its books too)"
            )
        )

    @card_app.command("read")
    def read(
        reader: Annotated[
            str | None,
            typer.Option(
                "--reader", help="PC/SC reader name (default: the first reader holding a card)."
            ),
        ] = None,
        card_file: Annotated[
            Path | None,
            typer.Option(
                "--card", help="Read a software card file in-process instead of a reader."
            ),
        ] = None,
        wait: Annotated[
            float, typer.Option("--wait", help="Seconds to wait for a card.", min=0, max=600)
        ] = 0.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Read a purse card: public info, holder, balance and last transactions."""
        from cardio.errors import CardioError
        from cardio.purse import Purse

        console = Console()
        try:
            if card_file is not None:
                from cardio.inproc import InProcessTransport
                from cardio.softcard import SoftCard

                transport = InProcessTransport(SoftCard.load(card_file))
                source = str(card_file)
            else:
                from cardio.pcsc import PcscTransport, find_card

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

    @card_app.command("readers")
    def readers() -> None:
        """List the PC/SC readers pcscd knows and whether a card is in each."""
        from cardio.errors import CardioError
        from cardio.pcsc import readers_with_card

        try:
            present = readers_with_card()
        except CardioError as error:
            Console(stderr=True).print(f"[red]error:[/red] {error.message}")
            raise typer.Exit(1) from None
        if not present:
            Console().print("no readers (is pcscd running? bash scripts/pcsc.sh start)")
        for name, has_card in present.items():
            typer.echo(f"{name}\t{'card present' if has_card else 'empty'}")

    @card_app.command("attach")
    def attach(
        card_file: Annotated[
            Path, typer.Option("--card", help="The software card file (CARD.json).")
        ],
        vpcd: Annotated[
            str, typer.Option("--vpcd", help="vpcd reader address HOST:PORT.")
        ] = "127.0.0.1:35963",
    ) -> None:
        """Plug a software card into pcscd through vpcd and serve it until stopped (Ctrl-C).

        The card's state is written back to the file after every change, before the answer goes
        out, so a card pulled mid-transaction keeps what it did.
        """
        from cardio.errors import CardioError, TransportError
        from cardio.softcard import SoftCard
        from cardio.vpcd import VpcdBridge, parse_host_port

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
                    f"(balance {_yuan(card.balance_fen)}); Ctrl-C to remove it"
                )
                bridge.serve()
                console.print("[yellow]vpcd closed the connection; reconnecting[/yellow]")
        except KeyboardInterrupt:
            bridge.pull()
            card.save(card_file)
            console.print(f"card removed; state saved to {card_file}")

    app.add_typer(card_app, name="card")


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
    from clearing.cli.registry_cmd import _valid
    from clearing.registry.schemas import CardIssue

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
    from clearing.cli.registry_cmd import ACTOR, _run
    from clearing.registry import service

    invariant(card.card_no == body.card_no, "chip and books name the same card")
    invariant(card.balance_fen == body.first_load_fen, "chip balance is the first load")
    staged = out.with_name(f".{out.name}.issuing")

    async def work(session: Any, ledger: Any) -> None:
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


def _read_card(purse: Purse) -> dict[str, object]:
    """Public info and balance must read; the optional parts (holder, log, transit record) of a
    foreign card may be missing, protected or laid out differently: shown as unavailable."""
    from cardio.errors import CardioError, TransportError

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
    summary.add_row("balance", _yuan(int(report["balance_fen"])))  # type: ignore[arg-type]
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
            _yuan(row["amount_fen"]),
            row["terminal_id"],
            row["occurred_at"] or "-",
        )
    console.print(log)
