"""A biller's bill service, small and real: the water, power and heating companies' side of the
HTTP/JSON biller protocol, run as its own process for tests, the demo and a quick start.

    python -m clearing.billing.simulator --port 8741 --data var/biller

It imports nothing of the back office (its own storage: one JSON file in --data, written
atomically after every change). The protocol (what clearing/billing/adapter.py speaks):

    GET  /health                                        {"status": "ok"}
    GET  /billers/<code>/accounts/<account_no>/bill     the bill due: bill_id, amount_due_fen,
                                                        due_date, period, status (open, paid,
                                                        expired), holder_name; 404 unknown
    POST /billers/<code>/confirmations                  {payment_id, account_no, bill_id,
                                                        amount_fen, paid_at, channel} → {ack_id,
                                                        duplicate}; idempotent by payment_id;
                                                        409 if another payment paid the bill
    GET  /billers/<code>/confirmation-files/<day>.csv   the day's confirmed payments (UTC day
                                                        of receipt), one CSV line each
    POST /admin/bills                                   {biller, account_no, amount_due_fen,
                                                        status?, due_in_days?}: a new bill
    POST /admin/outage                                  {"requests": N, "seconds": S}: answer
                                                        503 to the next N requests / for S s
    GET  /admin/stats                                   confirmation requests seen, per outcome

A bearer credential is required when ONECARD_BILLER_SIM_TOKEN is set. Never raises into the
client: every error is a JSON body with a status.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import signal
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DEFAULT_BILLERS = ("city-water=water", "city-power=power", "city-heat=heating")
_PREFIX = {"water": "W", "power": "P", "heating": "H"}
_BASE_FEN = {"water": 3_850, "power": 12_620, "heating": 48_000}
OPEN_ACCOUNTS = 20  # <P>1001 … <P>1020: open bills
BODY_BYTES_MAX = 16_384
OUTAGE_REQUESTS_MAX = 10_000
OUTAGE_SECONDS_MAX = 3_600
_BILL = re.compile(r"^/billers/([A-Za-z0-9._-]{1,64})/accounts/([A-Za-z0-9-]{1,32})/bill$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9-]{1,32}$")
_CONFIRM = re.compile(r"^/billers/([A-Za-z0-9._-]{1,64})/confirmations$")
_FILE = re.compile(r"^/billers/([A-Za-z0-9._-]{1,64})/confirmation-files/(\d{4}-\d{2}-\d{2})\.csv$")


def _bill(
    code: str, account: str, amount: int, due: date, status: str, name: str
) -> dict[str, Any]:
    return {
        "account_no": account,
        "bill_id": f"{code}-{account}-{due.year:04d}-{due.month:02d}",
        "amount_due_fen": amount,
        "due_date": due.isoformat(),
        "period": f"{due.year:04d}-{due.month:02d}",
        "status": status,
        "holder_name": name,
    }


def seed_bills(billers: list[tuple[str, str]], today: date) -> dict[str, Any]:
    """Open, paid, expired and one large bill per biller; deterministic amounts."""
    state: dict[str, Any] = {"billers": {}, "confirmations": {}}
    soon, later, past = (today + timedelta(days=d) for d in (5, 20, -40))
    for code, kind in billers:
        prefix = _PREFIX.get(kind, "A")
        base = _BASE_FEN.get(kind, 5_000)
        bills: dict[str, Any] = {}
        for n in range(1, OPEN_ACCOUNTS + 1):
            account = f"{prefix}{1000 + n}"
            bills[account] = _bill(code, account, base + 137 * n, later, "open", f"Household {n}")
        bills[f"{prefix}1090"] = _bill(code, f"{prefix}1090", base, soon, "paid", "Paid Up")
        bills[f"{prefix}1091"] = _bill(code, f"{prefix}1091", base, past, "expired", "Late Payer")
        bills[f"{prefix}1099"] = _bill(code, f"{prefix}1099", 650_000, later, "open", "Big Factory")
        state["billers"][code] = {"kind": kind, "bills": bills}
    return state


class BillerStore:
    """The simulator's state, one lock, saved atomically after each change."""

    def __init__(self, path: Path, state: dict[str, Any]) -> None:
        self.path = path
        self.state = state
        self.lock = threading.Lock()
        self.outage_requests = 0
        self.outage_until = 0.0
        self.stats = {"confirm_requests": 0, "accepted": 0, "duplicates": 0, "refused_503": 0}

    @classmethod
    def open(cls, data_dir: Path, billers: list[tuple[str, str]]) -> BillerStore:
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / "bills.json"
        if path.exists():
            state = json.loads(path.read_text(encoding="utf-8"))
        else:
            state = seed_bills(billers, datetime.now(UTC).date())
        store = cls(path, state)
        store.save()
        return store

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)

    def down_now(self) -> bool:
        """Whether this request is answered 503 (and counts it against the outage)."""
        with self.lock:
            if self.outage_requests > 0:
                self.outage_requests -= 1
                self.stats["refused_503"] += 1
                return True
            if time.monotonic() < self.outage_until:
                self.stats["refused_503"] += 1
                return True
            return False

    def bill(self, code: str, account: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.state["billers"].get(code, {}).get("bills", {}).get(account)
            return dict(found) if found else None

    def confirm(self, code: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.stats["confirm_requests"] += 1
            payment_id = str(body.get("payment_id", ""))
            known = self.state["confirmations"].get(payment_id)
            if known is not None:
                self.stats["duplicates"] += 1
                return 200, {"ack_id": known["ack_id"], "duplicate": True}
            bill = (
                self.state["billers"]
                .get(code, {})
                .get("bills", {})
                .get(str(body.get("account_no")))
            )
            if bill is None or bill["bill_id"] != body.get("bill_id"):
                return 404, {"error": "no such bill"}
            if bill["status"] == "paid":
                return 409, {"error": "bill already paid by another payment"}
            if bill["amount_due_fen"] != body.get("amount_fen"):
                return 422, {"error": "amount is not the amount due"}
            ack = f"ack-{code}-{len(self.state['confirmations']) + 1:06d}"
            bill["status"] = "paid"
            self.state["confirmations"][payment_id] = {
                "biller": code,
                "payment_id": payment_id,
                "ack_id": ack,
                "account_no": bill["account_no"],
                "bill_id": bill["bill_id"],
                "amount_fen": bill["amount_due_fen"],
                "paid_at": str(body.get("paid_at", "")),
                "channel": str(body.get("channel", "")),
                "received_at": datetime.now(UTC).isoformat(),
            }
            self.stats["accepted"] += 1
            self.save()
            return 200, {"ack_id": ack, "duplicate": False}

    def add_bill(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A new bill (tests, the demo): biller, account_no, amount_due_fen, optional status
        (open, paid, expired) and due_in_days."""
        code, account = body.get("biller"), body.get("account_no")
        amount, status = body.get("amount_due_fen"), body.get("status", "open")
        days = body.get("due_in_days", 20)
        if not (isinstance(code, str) and isinstance(account, str) and _ACCOUNT.match(account)):
            return 422, {"error": "biller and account_no (1-32 letters, digits, '-') required"}
        if not (isinstance(amount, int) and amount > 0 and status in ("open", "paid", "expired")):
            return 422, {"error": "amount_due_fen > 0 and status open, paid or expired"}
        if not isinstance(days, int) or abs(days) > 3_650:
            return 422, {"error": "due_in_days within ±3650"}
        with self.lock:
            biller = self.state["billers"].get(code)
            if biller is None:
                return 404, {"error": f"no biller {code}"}
            due = datetime.now(UTC).date() + timedelta(days=days)
            bill = _bill(code, account, amount, due, status, str(body.get("holder_name", "")))
            biller["bills"][account] = bill
            self.save()
            return 200, bill

    def confirmation_file(self, code: str, day: str) -> str:
        fields = (
            "payment_id",
            "ack_id",
            "account_no",
            "bill_id",
            "amount_fen",
            "paid_at",
            "channel",
        )
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(fields)
        with self.lock:
            rows = [
                c
                for c in self.state["confirmations"].values()
                if c["biller"] == code and c["received_at"][:10] == day
            ]
        for row in sorted(rows, key=lambda c: c["received_at"]):
            writer.writerow([row[f] for f in fields])
        return out.getvalue()


class BillerHandler(BaseHTTPRequestHandler):
    store: BillerStore
    token: str
    server_version = "onecard-biller-sim/1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests and the demo read the answers, not a log

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > BODY_BYTES_MAX:
            return None
        try:
            parsed = json.loads(self.rfile.read(length))
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None

    def _allowed(self) -> bool:
        if self.token and self.headers.get("Authorization") != f"Bearer {self.token}":
            self._send(401, {"error": "a bearer credential is required"})
            return False
        return True

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {"status": "ok"})
            return
        if not self._allowed():
            return
        if self.path == "/admin/stats":
            self._send(200, dict(self.store.stats))
            return
        if self.store.down_now():
            self._send(503, {"error": "the biller is down for maintenance"})
            return
        if match := _BILL.match(self.path):
            bill = self.store.bill(match[1], match[2])
            self._send(200, bill) if bill else self._send(404, {"error": "no such account"})
        elif match := _FILE.match(self.path):
            self._send(200, self.store.confirmation_file(match[1], match[2]), "text/csv")
        else:
            self._send(404, {"error": "no such resource"})

    def do_POST(self) -> None:
        if not self._allowed():
            return
        body = self._body()
        if body is None:
            self._send(400, {"error": "a JSON object body is required"})
            return
        if self.path == "/admin/outage":
            self._outage(body)
            return
        if self.path == "/admin/bills":
            status, answer = self.store.add_bill(body)
            self._send(status, answer)
            return
        if self.store.down_now():
            self._send(503, {"error": "the biller is down for maintenance"})
            return
        if match := _CONFIRM.match(self.path):
            status, answer = self.store.confirm(match[1], body)
            self._send(status, answer)
        else:
            self._send(404, {"error": "no such resource"})

    def _outage(self, body: dict[str, Any]) -> None:
        requests, seconds = body.get("requests", 0), body.get("seconds", 0)
        if not (isinstance(requests, int) and 0 <= requests <= OUTAGE_REQUESTS_MAX) or not (
            isinstance(seconds, int | float) and 0 <= seconds <= OUTAGE_SECONDS_MAX
        ):
            self._send(
                422,
                {"error": f"requests 0..{OUTAGE_REQUESTS_MAX}, seconds 0..{OUTAGE_SECONDS_MAX}"},
            )
            return
        with self.store.lock:
            self.store.outage_requests = requests
            self.store.outage_until = time.monotonic() + float(seconds)
        self._send(200, {"requests": requests, "seconds": seconds})


def _billers(values: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        code, sep, kind = value.partition("=")
        if not sep or not code or not kind:
            raise SystemExit(f"--biller takes CODE=KIND (water, power, heating), not {value!r}")
        pairs.append((code, kind))
    return pairs


def serve(host: str, port: int, data_dir: Path, billers: list[tuple[str, str]]) -> None:
    store = BillerStore.open(data_dir, billers)
    handler = type(
        "Handler",
        (BillerHandler,),
        {"store": store, "token": os.environ.get("ONECARD_BILLER_SIM_TOKEN", "")},
    )
    server = ThreadingHTTPServer((host, port), handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop cleanly: ready.json goes
    ready = data_dir / "ready.json"
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"port": server.server_address[1], "pid": os.getpid()}), encoding="utf-8"
    )
    os.replace(tmp, ready)  # the port is known (even for --port 0): readers may connect now
    try:
        server.serve_forever()
    finally:
        ready.unlink(missing_ok=True)
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m clearing.billing.simulator", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=8741, help="0 picks a free port (see DATA/ready.json)"
    )
    parser.add_argument("--data", type=Path, default=Path("var/biller"), help="its own storage")
    parser.add_argument("--biller", action="append", default=None, help="CODE=KIND, repeatable")
    args = parser.parse_args(argv)
    try:
        serve(args.host, args.port, args.data, _billers(args.biller or list(DEFAULT_BILLERS)))
    except KeyboardInterrupt:
        return
    except OSError as error:
        raise SystemExit(
            f"biller service cannot listen on {args.host}:{args.port}: {error.strerror}"
        ) from None


if __name__ == "__main__":
    main()
