"""CARD.json kept out of the card logic: a card opened from its file saves every change there,
the persistence hook sees each persistent change and nothing else, and a failed save undoes it."""

from __future__ import annotations

import stat
from datetime import datetime
from pathlib import Path

import pytest

from cardio import testing
from cardio.cardfile import CardFile, read_card_file
from cardio.cardstate import CardState
from cardio.inproc import InProcessTransport
from cardio.keystore import KeyStore
from cardio.purse import Purse
from cardio.records import TransitRecord
from cardio.softcard import SoftCard

TERMINAL = bytes.fromhex("000002000077")
WHEN = datetime(2026, 11, 29, 18, 5, 0)


def _buy(card: SoftCard, key_store: KeyStore, amount_fen: int, serial: int) -> None:
    purse = Purse(InProcessTransport(card))
    purse.select()
    info = purse.read_public_info()
    testing.purchase(
        purse, testing.ClearKeys(key_store), info, amount_fen, TERMINAL, serial, WHEN,
        TransitRecord().encode(),
    )  # fmt: skip


def test_a_card_opened_from_its_file_saves_each_purchase_there(
    tmp_path: Path, soft_card: SoftCard, key_store: KeyStore
) -> None:
    path = tmp_path / "CARD.json"
    soft_card.save(path)
    card = SoftCard.open(path)
    _buy(card, key_store, 70, 1)
    _buy(card, key_store, 30, 2)
    on_disk = SoftCard.load(path)
    assert (on_disk.balance_fen, on_disk.offline_counter) == (4_900, 2)
    assert on_disk.to_json() == card.to_json()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_persist_hook_sees_each_change_and_no_read(
    soft_card: SoftCard, key_store: KeyStore
) -> None:
    saved: list[CardState] = []
    card = SoftCard(soft_card.state, persist=saved.append)
    purse = Purse(InProcessTransport(card))
    purse.select()
    purse.read_public_info()
    assert purse.get_balance() == 5_000
    assert saved == []
    _buy(card, key_store, 70, 1)
    assert [state.balance_fen for state in saved] == [4_930]


def test_a_card_whose_save_fails_keeps_its_money_and_the_resend_works(
    tmp_path: Path, soft_card: SoftCard, key_store: KeyStore
) -> None:
    path = tmp_path / "CARD.json"
    soft_card.save(path)
    failures = [OSError("disk full")]

    def save_or_fail(state: CardState) -> None:
        if failures:
            raise failures.pop()
        CardFile(path)(state)

    card = SoftCard(read_card_file(path), persist=save_or_fail)
    with pytest.raises(OSError, match="disk full"):
        _buy(card, key_store, 70, 1)
    assert (card.balance_fen, card.offline_counter, card.state_version) == (5_000, 0, 0)
    assert read_card_file(path).balance_fen == 5_000
    _buy(card, key_store, 70, 2)
    assert read_card_file(path).balance_fen == card.balance_fen == 4_930
