"""A city's first day without a reader or code: `terminal provision` takes the server's key from
the running service, `terminal simulate` taps card files on provisioned terminals and uploads
through their own uploaders. Real uvicorn on PostgreSQL; terminals, cards and lists are real.
"""

from __future__ import annotations

import re
import socket
import tomllib
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from cardio.keystore import create_key_store
from cardio.records import CardType
from cardio.softcard import SoftCard
from clearing.auth.models import Role
from clearing.cli import app
from terminals.client import key_fingerprint
from terminals.journal import Journal
from tests.clearing.apiharness import (
    LIST_KEY_HEX,
    issue_token_in_subprocess,
    public_hex,
    random_card_no,
    random_code,
    random_terminal_id,
    uvicorn_server,
)

SERVER_KEY = public_hex(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(LIST_KEY_HEX)))


@pytest.fixture(scope="module")
def server(pg_url, tmp_path_factory):
    with uvicorn_server(pg_url, tmp_path_factory.mktemp("firstday")) as (base, env):
        yield base, issue_token_in_subprocess(env, Role.ADMIN, "firstday")


@pytest.fixture
def issuer_keys(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    create_key_store(path)
    return path


def provision(keys: Path, out: Path, terminal_id: str, *extra: str):
    return CliRunner().invoke(
        app,
        [
            "terminal",
            "provision",
            "--terminal-id",
            terminal_id,
            "--out",
            str(out),
            "--key-store",
            str(keys),
            *extra,
        ],
    )


def said(result) -> str:
    """The output as one line of words (rich wraps long lines at the terminal's width)."""
    return " ".join(result.output.split())


def pinned_key(out: Path) -> str:
    return tomllib.loads((out / "terminal.toml").read_text())["server_public_key"]


def closed_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.postgres
def test_provision_without_a_server_key_pins_the_running_services_key(
    server, issuer_keys, tmp_path
) -> None:
    base, _ = server
    out = tmp_path / "bus"
    result = provision(issuer_keys, out, random_terminal_id(), "--clearing-url", base)
    assert result.exit_code == 0, result.output
    assert pinned_key(out) == SERVER_KEY
    assert f"fetched from {base} and pinned): {key_fingerprint(SERVER_KEY)}" in said(result)
    assert (out / "public-key.hex").read_text().strip() in said(result)


@pytest.mark.postgres
def test_provision_refuses_a_server_key_with_another_fingerprint(
    server, issuer_keys, tmp_path
) -> None:
    base, _ = server
    out = tmp_path / "bus"
    expected = key_fingerprint("22" * 32)
    result = provision(
        issuer_keys,
        out,
        random_terminal_id(),
        "--clearing-url",
        base,
        "--server-key-fingerprint",
        expected,
    )
    assert result.exit_code == 1
    assert f"not the expected {expected}" in said(result)
    assert not (out / "terminal.toml").exists()
    matching = provision(
        issuer_keys,
        out,
        random_terminal_id(),
        "--clearing-url",
        base,
        "--server-key-fingerprint",
        key_fingerprint(SERVER_KEY),
    )
    assert matching.exit_code == 0, matching.output
    assert "fingerprint as expected" in said(matching) and pinned_key(out) == SERVER_KEY


def test_provision_against_an_unreachable_service_says_so_in_one_line(
    issuer_keys, tmp_path
) -> None:
    url = closed_url()
    result = provision(issuer_keys, tmp_path / "bus", random_terminal_id(), "--clearing-url", url)
    assert result.exit_code == 1
    assert f"clearing service at {url} unreachable" in said(result)
    assert "Traceback" not in said(result)
    assert not (tmp_path / "bus" / "terminal.toml").exists()


def test_provision_refuses_a_given_server_key_that_is_not_an_ed25519_key(
    issuer_keys, tmp_path
) -> None:
    result = provision(
        issuer_keys, tmp_path / "bus", random_terminal_id(), "--server-public-key", "ab" * 31
    )
    assert result.exit_code == 1
    assert "must be an Ed25519 key" in said(result)


def _card_files(keys: Path, folder: Path, count: int, valid_from: date) -> list[Path]:
    from cardio.keystore import load_key_store

    store = load_key_store(keys)
    files = []
    for n in range(count):
        card = SoftCard.issue(
            store,
            random_card_no(),
            CardType.ADULT,
            balance_fen=5000,
            valid_from=valid_from,
            valid_until=valid_from + timedelta(days=3650),
        )
        files.append(folder / f"card-{n}.json")
        card.save(files[-1])
    return files


def simulate(*args: str):
    return CliRunner().invoke(
        app, ["terminal", "simulate", *args], env={"COLUMNS": "120"}, catch_exceptions=False
    )


def totals(output: str) -> tuple[int, ...]:
    plain = output.replace("│", " ")
    found = re.search(r"^\s*all\s+(\d+)\s+(\d+)\s+(\d+)\s+[\d,.]+\s+(\d+)\s+(\d+)", plain, re.M)
    assert found, output
    return tuple(int(group) for group in found.groups())


@pytest.mark.postgres
def test_simulate_taps_card_files_on_provisioned_buses_and_uploads_to_the_service(
    server, issuer_keys, tmp_path
) -> None:
    base, token = server
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
    code = random_code("bus")
    participant = {
        "code": code,
        "name": "First Day Bus",
        "kind": "bus_operator",
        "commission_bp": 50,
        "bank_account": "6222020200112233445",
        "bank_name": "ICBC",
    }
    assert admin.post("/v1/participants", json=participant).status_code == 201
    terminal_id = random_terminal_id()
    out = tmp_path / "bus"
    assert provision(issuer_keys, out, terminal_id, "--clearing-url", base).exit_code == 0
    registered = admin.post(
        "/v1/terminals",
        json={
            "terminal_id": terminal_id,
            "participant": code,
            "kind": "bus",
            "public_key": (out / "public-key.hex").read_text().strip(),
            "line": "1",
        },
    )
    assert registered.status_code == 201, registered.text
    day = date.today() - timedelta(days=1)
    cards = tmp_path / "cards"
    files = _card_files(issuer_keys, cards, 3, day - timedelta(days=1))
    lost = SoftCard.load(files[0]).card_no
    issued = {"holder_id": "r-lost", "holder_name": "Lost", "card_type": "adult"}
    issued |= {"card_no": lost, "deposit_fen": 0, "first_load_fen": 5000}
    assert admin.post("/v1/cards", json=issued).status_code == 201
    assert admin.post(f"/v1/cards/{lost}/report-lost", json={"reason": "t"}).status_code == 200

    result = simulate(
        "--config", str(out / "terminal.toml"), "--cards", str(cards), "--taps", "12",
        "--day", day.isoformat(),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    taps, paid, refused, uploaded, pending = totals(result.output)
    assert (taps, pending) == (12, 0)
    assert paid + refused == 12 and refused > 0
    assert uploaded == paid  # a refused tap debits nothing and journals nothing
    assert "refused denied" in said(result)  # the deny list came down, verified, before taps
    assert SoftCard.load(files[0]).balance_fen == 5000
    spent = sum(5000 - SoftCard.load(path).balance_fen for path in files)
    assert spent > 0 and f"cards paid {spent // 100}.{spent % 100:02d}" in said(result)
    batches = admin.get(f"/v1/batches?terminal_id={terminal_id}").json()
    assert sum(b["record_count"] for b in batches) == paid


def test_simulate_with_the_service_down_keeps_the_taps_and_exits_1(issuer_keys, tmp_path) -> None:
    out = tmp_path / "bus"
    terminal_id = random_terminal_id()
    provisioned = provision(
        issuer_keys, out, terminal_id, "--clearing-url", closed_url(),
        "--server-public-key", SERVER_KEY,
    )  # fmt: skip
    assert provisioned.exit_code == 0, provisioned.output
    day = date.today() - timedelta(days=1)
    cards = tmp_path / "cards"
    _card_files(issuer_keys, cards, 2, day)
    result = simulate(
        "--config", str(out / "terminal.toml"), "--cards", str(cards), "--taps", "5",
        "--day", day.isoformat(),
    )  # fmt: skip
    assert result.exit_code == 1
    assert (totals(result.output)[0], totals(result.output)[-1]) == (5, 5)
    assert "5 record(s) not uploaded" in said(result) and "unreachable" in said(result)
    journal = Journal(out / "journal.db", terminal_id)
    assert journal.stats().pending_upload == 5
    journal.close()


def test_simulate_a_day_before_the_cards_validity_says_why_they_were_refused(
    issuer_keys, tmp_path
) -> None:
    out = tmp_path / "bus"
    assert provision(issuer_keys, out, random_terminal_id()).exit_code == 0
    cards = tmp_path / "cards"
    _card_files(issuer_keys, cards, 1, date.today())
    day = date.today() - timedelta(days=3)
    result = simulate(
        "--config", str(out / "terminal.toml"), "--cards", str(cards), "--taps", "2",
        "--day", day.isoformat(),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "refused not_valid: 2" in said(result)
    assert f"issue it with --valid-from {day} or earlier" in said(result)


def test_simulate_without_card_files_is_a_usage_error(issuer_keys, tmp_path) -> None:
    out = tmp_path / "bus"
    assert provision(issuer_keys, out, random_terminal_id()).exit_code == 0
    (tmp_path / "empty").mkdir()
    result = simulate("--config", str(out / "terminal.toml"), "--cards", str(tmp_path / "empty"))
    assert result.exit_code == 2
    assert "no card files" in said(result)


def test_simulate_taps_are_bounded_and_a_terminal_is_driven_once(issuer_keys, tmp_path) -> None:
    from terminals.fleet import TAPS_PER_RUN_MAX

    out = tmp_path / "bus"
    assert provision(issuer_keys, out, random_terminal_id()).exit_code == 0
    cards = tmp_path / "cards"
    _card_files(issuer_keys, cards, 1, date.today() - timedelta(days=5))
    config = str(out / "terminal.toml")
    too_many = simulate(
        "--config", config, "--cards", str(cards), "--taps", str(TAPS_PER_RUN_MAX + 1)
    )
    assert too_many.exit_code == 2
    twice = simulate("--config", config, "--config", config, "--cards", str(cards), "--taps", "1")
    assert twice.exit_code == 2 and "a terminal is named twice" in said(twice)
    journal_files = list(out.glob("journal.db"))
    assert not journal_files  # refused before any terminal was opened
