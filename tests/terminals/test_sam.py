"""The software PSAM: MAC1 and MAC2 by PURSE.md, a durable serial, keys only from its key file."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from cardio import crypto
from cardio.apdu import CommandApdu
from cardio.keystore import KeyKind, KeyStore
from terminals.errors import MacInvalid, SamError
from terminals.sam import (
    Psam,
    SamKeyError,
    SamSerialCorrupt,
    SerialStore,
    SoftwareSam,
    load_sam_keys,
    provision_sam_keys,
)

from .conftest import TERMINAL_ID

CARD_NO = "3100000000000042"
WHEN = datetime(2026, 11, 30, 8, 0, 0)


def expected_mac1(issuer: KeyStore, serial: int, amount: int = 200) -> bytes:
    dpk = crypto.diversify_key(issuer.master(KeyKind.PURCHASE).key, bytes.fromhex(CARD_NO))
    sespk = crypto.purchase_session_key(dpk, b"\x01\x02\x03\x04", 7, serial)
    return crypto.purchase_mac1(sespk, amount, 9, bytes.fromhex(TERMINAL_ID), WHEN)


def init(psam: Psam, amount: int = 200, key_version: int = 1):
    return psam.init_for_purchase(
        b"\x01\x02\x03\x04", 7, amount, 9, WHEN, key_version, crypto.Algorithm.TDES, CARD_NO
    )


def test_mac1_is_the_purse_mac1_and_serials_count_up(sam: SoftwareSam, issuer: KeyStore):
    psam = Psam(sam)
    psam.select()
    assert psam.terminal_id().hex().upper() == TERMINAL_ID
    first, second = init(psam), init(psam)
    assert (first.terminal_serial, second.terminal_serial) == (1, 2)
    assert first.mac1 == expected_mac1(issuer, 1)
    assert second.mac1 == expected_mac1(issuer, 2)


def test_mac2_is_verified_and_a_wrong_one_refused(sam: SoftwareSam, issuer: KeyStore):
    psam = Psam(sam)
    result = init(psam, amount=350)
    dpk = crypto.diversify_key(issuer.master(KeyKind.PURCHASE).key, bytes.fromhex(CARD_NO))
    sespk = crypto.purchase_session_key(dpk, b"\x01\x02\x03\x04", 7, result.terminal_serial)
    with pytest.raises(MacInvalid):
        psam.verify_mac2(b"\x00\x00\x00\x00")
    psam.verify_mac2(crypto.purchase_mac2(sespk, 350))
    with pytest.raises(SamError):  # the session is used up
        psam.verify_mac2(crypto.purchase_mac2(sespk, 350))


def test_serial_never_repeats_across_restarts(sam: SoftwareSam, tmp_path: Path, issuer: KeyStore):
    psam = Psam(sam)
    for _ in range(3):
        init(psam)
    keys = load_sam_keys(tmp_path / "sam-keys.json")
    restarted = Psam(SoftwareSam(keys, tmp_path / "sam-serial"))
    assert init(restarted).terminal_serial == 4
    assert SerialStore(tmp_path / "sam-serial").last == 4


def test_unknown_key_version_is_refused_with_9403(sam: SoftwareSam):
    with pytest.raises(SamError) as refused:
        init(Psam(sam), key_version=9)
    assert refused.value.sw == 0x9403
    assert sam.last_serial == 0  # nothing allocated for a refused command


def test_unsupported_instruction_and_bad_length_answer_status_words(sam: SoftwareSam):
    assert sam.transmit(CommandApdu(0x80, 0x99, 0, 0).encode())[-2:] == b"\x6d\x00"
    assert (
        sam.transmit(CommandApdu(0x80, 0x70, 0, 0, b"\x00" * 10, le=8).encode())[-2:] == b"\x67\x00"
    )


def test_sam_key_file_holds_no_tac_key_and_must_be_private(issuer: KeyStore, tmp_path: Path):
    path = tmp_path / "k.json"
    keys = provision_sam_keys(issuer, bytes.fromhex(TERMINAL_ID), path)
    body = json.loads(path.read_text())
    assert set(body) == {"format", "terminal_id", "algorithm", "purchase"}
    assert issuer.master(KeyKind.TAC).key.hex().upper() not in path.read_text()
    assert keys.purchase.key.hex() not in repr(keys) and "key" not in repr(
        SoftwareSam(keys, tmp_path / "s")
    )
    os.chmod(path, 0o644)
    with pytest.raises(SamKeyError):
        load_sam_keys(path)


@pytest.mark.parametrize("text", ["x", "-1", "4294967296", "²", ""])
def test_a_corrupt_serial_file_is_a_typed_error_naming_it(tmp_path, text) -> None:
    path = tmp_path / "sam-serial"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SamSerialCorrupt, match="sam-serial is corrupt"):
        SerialStore(path)
