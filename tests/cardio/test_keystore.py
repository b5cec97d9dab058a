"""The key store file: random keys, 0600, strict parsing, no key material in reprs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cardio import crypto
from cardio.errors import KeyStoreError
from cardio.keystore import KeyKind, create_key_store, load_key_store


def test_created_key_store_is_0600_and_loads_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "keys.json"
    store = create_key_store(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_key_store(path)
    assert loaded == store
    assert {k.kind for k in loaded.keys} == set(KeyKind)
    assert len({k.key for k in loaded.keys}) == len(KeyKind)  # random, distinct


def test_two_created_stores_have_different_keys(tmp_path: Path) -> None:
    one = create_key_store(tmp_path / "a.json")
    two = create_key_store(tmp_path / "b.json")
    assert one.master(KeyKind.TAC).key != two.master(KeyKind.TAC).key


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = create_key_store(path)
    with pytest.raises(KeyStoreError):
        create_key_store(path)
    assert load_key_store(path) == first
    second = create_key_store(path, overwrite=True)
    assert load_key_store(path) == second != first


def test_refuses_a_key_store_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    create_key_store(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        load_key_store(path)


def test_missing_file_is_a_key_store_error(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="no key store"):
        load_key_store(tmp_path / "absent.json")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda body: body.update(format="other"),
        lambda body: body["keys"].clear(),
        lambda body: body["keys"][0].update(key="zz"),
        lambda body: body["keys"][0].update(key="00" * 8),
        lambda body: body["keys"][0].update(kind="nonsense"),
        lambda body: body["keys"][0].update(index=0),
        lambda body: body["keys"].append(dict(body["keys"][0])),
        lambda body: body.update(issuer_id="0011"),
        lambda body: body.update(algorithm=7),
    ],
)
def test_malformed_key_store_is_refused(tmp_path: Path, mutate) -> None:
    path = tmp_path / "keys.json"
    create_key_store(path)
    body = json.loads(path.read_text())
    mutate(body)
    path.write_text(json.dumps(body))
    with pytest.raises(KeyStoreError):
        load_key_store(path)


def test_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{not json")
    path.chmod(0o600)
    with pytest.raises(KeyStoreError, match="not valid JSON"):
        load_key_store(path)


def test_reprs_never_show_key_material(tmp_path: Path) -> None:
    store = create_key_store(tmp_path / "keys.json")
    card = store.card_keys(bytes.fromhex("00003100000000000001"))
    texts = [repr(store), repr(card), *(repr(k) for k in store.keys)]
    secrets = [k.key for k in store.keys] + [card.dpk, card.dlk, card.dtk, card.maintenance]
    for text in texts:
        for secret in secrets:
            assert secret.hex() not in text.lower()
            assert secret.hex().upper() not in text


def test_card_keys_are_diversified_from_the_masters(tmp_path: Path) -> None:
    store = create_key_store(tmp_path / "keys.json")
    serial = bytes.fromhex("00003100000000000001")
    card = store.card_keys(serial)
    assert card.dpk == crypto.diversify_key(store.master(KeyKind.PURCHASE).key, serial)
    assert card.dtk == crypto.diversify_key(store.master(KeyKind.TAC).key, serial)
    other = store.card_keys(bytes.fromhex("00003100000000000002"))
    assert other.dpk != card.dpk
    assert card.dpk_index == store.master(KeyKind.PURCHASE).index


def test_master_by_index(tmp_path: Path) -> None:
    store = create_key_store(tmp_path / "keys.json")
    assert store.master(KeyKind.LOAD, 1).index == 1
    with pytest.raises(KeyStoreError):
        store.master(KeyKind.LOAD, 2)


def test_a_least_privilege_copy_holds_only_the_kinds_asked(tmp_path: Path) -> None:
    from cardio.keystore import write_key_store

    full = create_key_store(tmp_path / "keys.json")
    write_key_store(full.only(KeyKind.TAC), tmp_path / "tac.json")
    tac_only = load_key_store(tmp_path / "tac.json")
    assert tac_only.master(KeyKind.TAC) == full.master(KeyKind.TAC)
    assert [k.kind for k in tac_only.keys] == [KeyKind.TAC]
    with pytest.raises(KeyStoreError, match="no purchase master key"):
        tac_only.master(KeyKind.PURCHASE)
    with pytest.raises(KeyStoreError):
        tac_only.card_keys(bytes(10))  # personalising a card needs every key
