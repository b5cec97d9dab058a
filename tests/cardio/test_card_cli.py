"""`onecard card keys|issue|read|attach`, the last one as a real process behind pcscd/vpcd."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cardio import testing
from cardio.cli import app
from cardio.keystore import load_key_store
from cardio.pcsc import PcscTransport, wait_for_card, wait_for_removal
from cardio.purse import Purse
from cardio.softcard import SoftCard

from .conftest import VPCD_PORT

runner = CliRunner()


def _issue(tmp_path: Path, *extra: str) -> tuple[Path, Path]:
    keys = tmp_path / "keys.json"
    card = tmp_path / "CARD.json"
    result = runner.invoke(app, ["card", "keys", "--out", str(keys)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "card",
            "issue",
            "--out",
            str(card),
            "--number",
            "3100000000000123",
            "--type",
            "student",
            "--balance",
            "1500",
            "--holder",
            "Li Lei",
            "--keys",
            str(keys),
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return keys, card


def test_keys_then_issue_then_read_in_process(tmp_path: Path) -> None:
    keys, card = _issue(tmp_path)
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert stat.S_IMODE(card.stat().st_mode) == 0o600
    for secret in (k.key.hex().upper() for k in load_key_store(keys).keys):
        assert secret not in card.read_text()  # the card holds diversified keys, never masters
    result = runner.invoke(app, ["card", "read", "--card", str(card), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["card_no"] == "3100000000000123"
    assert report["card_type"] == "student"
    assert report["balance_fen"] == 1500
    assert report["holder"] == "Li Lei"
    human = runner.invoke(app, ["card", "read", "--card", str(card)])
    assert "¥15.00" in human.output and "3100000000000123" in human.output


def test_issue_refuses_bad_type_existing_file_and_missing_key_store(tmp_path: Path) -> None:
    keys, card = _issue(tmp_path)
    again = runner.invoke(
        app,
        ["card", "issue", "--out", str(card), "--number", "3100000000000124", "--keys", str(keys)],
    )
    assert again.exit_code != 0
    bad_type = runner.invoke(
        app,
        [
            "card",
            "issue",
            "--out",
            str(tmp_path / "b.json"),
            "--number",
            "3100000000000124",
            "--type",
            "pilot",
            "--keys",
            str(keys),
        ],
    )
    assert bad_type.exit_code != 0
    no_keys = runner.invoke(
        app,
        [
            "card",
            "issue",
            "--out",
            str(tmp_path / "c.json"),
            "--number",
            "3100000000000124",
            "--keys",
            str(tmp_path / "none.json"),
        ],
    )
    assert no_keys.exit_code == 1
    assert "no key store" in no_keys.output
    assert not (tmp_path / "c.json").exists()


@pytest.mark.pcsc
def test_attach_serves_the_card_file_through_pcscd_and_persists_it(
    tmp_path: Path, pcscd_reader: str
) -> None:
    keys, card_file = _issue(tmp_path)
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "onecard"),
            "card",
            "attach",
            "--card",
            str(card_file),
            "--vpcd",
            f"127.0.0.1:{VPCD_PORT}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for_card(pcscd_reader, 10.0)
        result = runner.invoke(app, ["card", "read", "--reader", pcscd_reader, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["balance_fen"] == 1500
        listed = runner.invoke(app, ["card", "readers"])
        assert f"{pcscd_reader}\tcard present" in listed.output
        found = runner.invoke(app, ["card", "read", "--json"])  # no --reader: the one with a card
        assert found.exit_code == 0, found.output
        assert json.loads(found.output)["card_no"] == "3100000000000123"
        with PcscTransport.open(pcscd_reader) as transport:
            purse = Purse(transport)
            info = purse.select().public_info
            testing.purchase(
                purse,
                testing.ClearKeys(load_key_store(keys)),
                info,
                300,
                bytes.fromhex("000001000050"),
                5,
                datetime(2026, 11, 29, 9, 0, 0),
            )
        # Saved before the answer went out: the file already holds the new balance.
        assert SoftCard.load(card_file).balance_fen == 1200
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=10)
        wait_for_removal(pcscd_reader, 5.0)
    assert process.returncode == 0, output
    assert b"state saved" in output
    assert SoftCard.load(card_file).offline_counter == 1


def test_an_sm4_key_store_issues_sm4_cards(tmp_path: Path) -> None:
    from cardio.crypto import Algorithm

    keys = tmp_path / "sm4.json"
    assert (
        runner.invoke(app, ["card", "keys", "--out", str(keys), "--algorithm", "sm4"]).exit_code
        == 0
    )
    assert (
        runner.invoke(app, ["card", "keys", "--out", str(keys)]).exit_code != 0
    )  # exists: refused
    card = tmp_path / "CARD.json"
    result = runner.invoke(
        app,
        ["card", "issue", "--out", str(card), "--number", "3100000000000444", "--keys", str(keys)],
    )
    assert result.exit_code == 0, result.output
    assert SoftCard.load(card).state.keys.algorithm is Algorithm.SM4
    assert (
        runner.invoke(
            app, ["card", "keys", "--out", str(tmp_path / "x.json"), "--algorithm", "aes"]
        ).exit_code
        != 0
    )


def test_keys_from_only_tac_writes_a_least_privilege_copy(tmp_path: Path) -> None:
    from cardio.keystore import KeyKind

    keys, _card = _issue(tmp_path)
    tac = tmp_path / "tac.json"
    result = runner.invoke(
        app, ["card", "keys", "--from", str(keys), "--only", "tac", "--out", str(tac)]
    )
    assert result.exit_code == 0, result.output
    copy = load_key_store(tac)
    assert [k.kind for k in copy.keys] == [KeyKind.TAC]
    assert copy.master(KeyKind.TAC) == load_key_store(keys).master(KeyKind.TAC)
    assert stat.S_IMODE(tac.stat().st_mode) == 0o600
    bad = runner.invoke(
        app, ["card", "keys", "--from", str(keys), "--only", "gold", "--out", str(tmp_path / "g")]
    )
    assert bad.exit_code != 0
    orphan = runner.invoke(app, ["card", "keys", "--only", "tac", "--out", str(tmp_path / "o")])
    assert orphan.exit_code != 0
    missing = runner.invoke(
        app, ["card", "keys", "--from", str(tmp_path / "none"), "--out", str(tmp_path / "m")]
    )
    assert missing.exit_code == 1 and "no key store" in missing.output


def test_attach_reconnects_when_the_reader_goes_away_and_saves_on_sigterm(tmp_path: Path) -> None:
    from .test_vpcd_bridge import FakeVpcd

    _keys, card_file = _issue(tmp_path)
    vpcd = FakeVpcd()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "onecard"),
            "card",
            "attach",
            "--card",
            str(card_file),
            "--vpcd",
            f"127.0.0.1:{vpcd.port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        vpcd.accept()
        vpcd.send(b"\x04")
        assert vpcd.recv()[:1] == b"\x3b"  # the ATR
        vpcd.conn.close()  # pcscd restarted: the card must come back by itself
        vpcd.accept()
        vpcd.send(bytes.fromhex("00A4040008A00000063201010500"))
        assert vpcd.recv()[-2:] == b"\x90\x00"
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
        vpcd.close()
    assert process.returncode == 0, output
    assert b"reconnecting" in output and b"state saved" in output
    assert SoftCard.load(card_file).balance_fen == 1500
