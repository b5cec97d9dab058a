"""CARD.json: the file a software card lives in between taps (format, bounds, atomic write).

The only file I/O of the software card. The file holds card keys: written 0600, atomically
(temporary file + fsync + rename, cardio.atomicfile), so a crash leaves the old card or the new.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cardio.atomicfile import MODE_SECRET, write_text_atomic
from cardio.cardstate import COUNTER_MAX, CardState, Proof
from cardio.crypto import Algorithm, CryptoInputError
from cardio.errors import ApduError, CardFileError
from cardio.keystore import CardKeys
from cardio.purse import LOG_RECORDS_MAX, TRIP_RECORDS_MAX
from cardio.records import TRANSIT_RECORD_LEN, TRIP_RECORD_LEN, PublicInfo

__all__ = [
    "CARD_FILE_BYTES_MAX",
    "CARD_FILE_FORMAT",
    "CardFile",
    "read_card_file",
    "state_from_json",
    "state_to_json",
    "write_card_file",
]

CARD_FILE_FORMAT = "onecard-card/1"
CARD_FILE_BYTES_MAX = 1 << 20


def state_to_json(state: CardState) -> str:
    """The CARD.json text of a card's state."""
    s, k = state, state.keys
    body = {
        "format": CARD_FILE_FORMAT,
        "card_no": state.card_no,
        "files": {
            "0015": s.public_info.hex().upper(),
            "0016": s.holder.hex().upper(),
            "0017": s.management.hex().upper(),
        },
        "keys": {
            "algorithm": int(k.algorithm),
            "dpk": k.dpk.hex().upper(),
            "dpk_index": k.dpk_index,
            "dpk_version": k.dpk_version,
            "dlk": k.dlk.hex().upper(),
            "dlk_index": k.dlk_index,
            "dlk_version": k.dlk_version,
            "dtk": k.dtk.hex().upper(),
            "maintenance": k.maintenance.hex().upper(),
        },
        "purse": {
            "balance_fen": s.balance_fen,
            "balance_limit_fen": s.balance_limit_fen,
            "overdraft_limit_fen": s.overdraft_limit_fen,
            "online_counter": s.online_counter,
            "offline_counter": s.offline_counter,
        },
        "log": [r.hex().upper() for r in s.log],
        "transit_records": {str(i): r.hex().upper() for i, r in sorted(s.transit_records.items())},
        "trips": [r.hex().upper() for r in s.trips],
        "last_purchase": _proof_json(s.last_purchase),
        "last_load": _proof_json(s.last_load),
    }
    return json.dumps(body, indent=2) + "\n"


def state_from_json(text: str) -> CardState:
    """The card state in a CARD.json text; CardFileError saying what is wrong with it."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError as error:
        raise CardFileError(f"the card file is not valid JSON (line {error.lineno})") from None
    try:
        return _state_from_json(body)
    except (
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        CryptoInputError,
        ApduError,
    ) as error:
        raise CardFileError(f"the card file is malformed: {type(error).__name__} {error}") from None


def write_card_file(path: str | os.PathLike[str], state: CardState) -> None:
    """Write CARD.json atomically (temporary file + fsync + rename), mode 0600: it holds card keys."""
    write_text_atomic(path, state_to_json(state), mode=MODE_SECRET)


def read_card_file(path: str | os.PathLike[str]) -> CardState:
    """The card state in the CARD.json at `path` (at most CARD_FILE_BYTES_MAX bytes)."""
    path = Path(path)
    try:
        if path.stat().st_size > CARD_FILE_BYTES_MAX:
            raise CardFileError(f"{path} is larger than {CARD_FILE_BYTES_MAX} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CardFileError(
            f"no card file at {path}: issue one with `onecard card issue`"
        ) from None
    try:
        return state_from_json(text)
    except CardFileError as error:  # named: `simulate --cards DIR` reads many files
        raise CardFileError(f"{path}: {error.message}") from None


class CardFile:
    """A SoftCard persistence hook: saves the card's state to one CARD.json on every change."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"CardFile({str(self.path)!r})"

    def __call__(self, state: CardState) -> None:
        write_card_file(self.path, state)


def _proof_json(proof: Proof | None) -> dict[str, object] | None:
    if proof is None:
        return None
    return {
        "txn_type": proof.txn_type,
        "counter_after": proof.counter_after,
        "mac": proof.mac.hex().upper(),
        "tac": proof.tac.hex().upper(),
    }


def _proof_from_json(body: dict[str, object] | None) -> Proof | None:
    if body is None:
        return None
    mac, tac = bytes.fromhex(str(body["mac"])), bytes.fromhex(str(body["tac"]))
    if len(mac) != 4 or len(tac) != 4:
        raise ValueError("proof MAC and TAC are 4 bytes")
    txn_type, counter_after = body["txn_type"], body["counter_after"]
    if not isinstance(txn_type, int) or not isinstance(counter_after, int):
        raise ValueError("proof type and counter are integers")
    return Proof(txn_type, counter_after, mac, tac)


def _hex_exact(value: object, length: int, what: str) -> bytes:
    raw = bytes.fromhex(str(value))
    if len(raw) != length:
        raise ValueError(f"{what} must be {length} bytes")
    return raw


def _int_in(value: object, low: int, high: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{what} must be an integer in {low}..{high}")
    return value


def _state_from_json(body: dict) -> CardState:
    if not isinstance(body, dict) or body.get("format") != CARD_FILE_FORMAT:
        raise ValueError(f"format must be {CARD_FILE_FORMAT!r}")
    files, k, p = body["files"], body["keys"], body["purse"]
    keys = CardKeys(
        algorithm=Algorithm(k["algorithm"]),
        dpk=_hex_exact(k["dpk"], 16, "dpk"),
        dpk_index=_int_in(k["dpk_index"], 1, 255, "dpk_index"),
        dpk_version=_int_in(k["dpk_version"], 0, 255, "dpk_version"),
        dlk=_hex_exact(k["dlk"], 16, "dlk"),
        dlk_index=_int_in(k["dlk_index"], 1, 255, "dlk_index"),
        dlk_version=_int_in(k["dlk_version"], 0, 255, "dlk_version"),
        dtk=_hex_exact(k["dtk"], 16, "dtk"),
        maintenance=_hex_exact(k["maintenance"], 16, "maintenance"),
    )
    limit = _int_in(p["balance_limit_fen"], 0, 0xFFFFFFFF, "balance_limit_fen")
    overdraft = _int_in(p["overdraft_limit_fen"], 0, 0xFFFFFF, "overdraft_limit_fen")
    state = CardState(
        public_info=_hex_exact(files["0015"], 30, "0015"),
        holder=_hex_exact(files["0016"], 55, "0016"),
        management=_hex_exact(files["0017"], 60, "0017"),
        keys=keys,
        balance_fen=_int_in(p["balance_fen"], 0, limit, "balance_fen"),
        balance_limit_fen=limit,
        overdraft_limit_fen=overdraft,
        online_counter=_int_in(p["online_counter"], 0, COUNTER_MAX, "online_counter"),
        offline_counter=_int_in(p["offline_counter"], 0, COUNTER_MAX, "offline_counter"),
        log=[_hex_exact(r, 23, "log record") for r in body.get("log", [])][:LOG_RECORDS_MAX],
        transit_records={
            _int_in(int(i), 1, 255, "record id"): _hex_exact(
                r, TRANSIT_RECORD_LEN, "transit record"
            )
            for i, r in body.get("transit_records", {}).items()
        },
        trips=[_hex_exact(r, TRIP_RECORD_LEN, "trip record") for r in body.get("trips", [])][
            :TRIP_RECORDS_MAX
        ],
        last_purchase=_proof_from_json(body.get("last_purchase")),
        last_load=_proof_from_json(body.get("last_load")),
    )
    PublicInfo.parse(state.public_info)  # must be a well-formed 0015
    return state
