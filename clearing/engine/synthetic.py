"""Synthetic but genuine tap records for tests, the benchmark and the demo: each record is
signed with the TAC the card itself would compute (the card key diversified from the issuer
master key), so the engine verifies them exactly as it verifies a real card's.

Never used on the production path; holds no keys of its own (the caller passes the store).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from cardio.crypto import Algorithm, TacVerifier, diversify_key, load_tac, purchase_tac
from cardio.keystore import KeyKind, KeyStore


@dataclass
class SyntheticCard:
    """The purse of one card as the card itself keeps it."""

    card_no: str
    balance_fen: int
    card_type: str = "adult"
    offline_counter: int = 0
    online_counter: int = 0


class TapSigner:
    """Computes card TACs from the issuer's master TAC key (what each card does with its DTK)."""

    def __init__(self, store: KeyStore, *, cached_contexts: bool = False) -> None:
        self._master = store.master(KeyKind.TAC).key
        self._algorithm: Algorithm = store.algorithm

        self._dtk = lru_cache(maxsize=200_000)(self._diversify)
        # A benchmark's million TACs: one cipher context per card (cardio's TacVerifier), not
        # one per TAC. Tests keep the independent per-TAC path the verifier is checked against.
        self._cached = (
            TacVerifier(self._master, self._algorithm, 200_000) if cached_contexts else None
        )

    def _diversify(self, card_no: str) -> bytes:
        return diversify_key(self._master, bytes.fromhex(card_no), self._algorithm)

    def purchase_tac(
        self,
        card_no: str,
        amount_fen: int,
        txn_type: int,
        terminal_id: str,
        terminal_seq: int,
        at: datetime,
    ) -> str:
        if self._cached is not None:
            found = self._cached.purchase_tac(
                bytes.fromhex(card_no), amount_fen, txn_type, bytes.fromhex(terminal_id),
                terminal_seq, at,
            )  # fmt: skip
            if found is None:
                raise ValueError("a purchase the card cannot sign")
            return found.hex().upper()
        tac = purchase_tac(
            self._dtk(card_no),
            amount_fen,
            txn_type,
            bytes.fromhex(terminal_id),
            terminal_seq,
            at,
            self._algorithm,
        )
        return tac.hex().upper()

    def load_tac(
        self,
        card_no: str,
        balance_after_fen: int,
        online_counter: int,
        amount_fen: int,
        terminal_id: str,
        at: datetime,
    ) -> str:
        tac = load_tac(
            self._dtk(card_no),
            balance_after_fen,
            online_counter,
            amount_fen,
            2,
            bytes.fromhex(terminal_id),
            at,
            self._algorithm,
        )
        return tac.hex().upper()


def purchase(
    signer: TapSigner,
    card: SyntheticCard,
    *,
    terminal_id: str,
    terminal_seq: int,
    amount_fen: int,
    at: datetime,
    full_fare_fen: int | None = None,
    route_id: str | None = None,
    kind: str = "purchase",
    insured_fen: int = 0,
    visit_id: str | None = None,
    grey: bool = False,
) -> dict[str, Any]:
    """A debit the card performs now (its counter and balance move), as the terminal
    journals it (docs/terminal-protocol.md)."""
    if amount_fen > card.balance_fen:
        raise ValueError("the card would refuse: insufficient balance (94 01)")
    at = at.replace(microsecond=0)
    record = {
        "kind": kind,
        "status": "grey" if grey else "complete",
        "terminal_seq": terminal_seq,
        "card_no": card.card_no,
        "card_counter": card.offline_counter,
        "txn_type": 6,
        "amount_fen": amount_fen,
        "balance_before_fen": card.balance_fen,
        "balance_after_fen": card.balance_fen - amount_fen,
        "occurred_at": at.isoformat(),
        "tac": None
        if grey
        else signer.purchase_tac(card.card_no, amount_fen, 6, terminal_id, terminal_seq, at),
        "card_type": card.card_type,
        "rider_category": card.card_type,
        "full_fare_fen": amount_fen if full_fare_fen is None else full_fare_fen,
        "fare_rule": "flat",
        "route_id": route_id,
        "stop_id": None,
        "insured_fen": insured_fen,
        "visit_id": visit_id,
        "load_id": None,
        "offline_fallback": False,
        "deny_list_version": 0,
        "action_list_version": 0,
    }
    card.balance_fen -= amount_fen
    card.offline_counter += 1
    return record


def load(
    signer: TapSigner,
    card: SyntheticCard,
    *,
    terminal_id: str,
    terminal_seq: int,
    amount_fen: int,
    load_id: str,
    at: datetime,
) -> dict[str, Any]:
    """A pending load the card writes onto itself (CREDIT FOR LOAD)."""
    at = at.replace(microsecond=0)
    after = card.balance_fen + amount_fen
    record = {
        "kind": "load",
        "status": "complete",
        "terminal_seq": terminal_seq,
        "card_no": card.card_no,
        "card_counter": card.online_counter,
        "txn_type": 2,
        "amount_fen": amount_fen,
        "balance_before_fen": card.balance_fen,
        "balance_after_fen": after,
        "occurred_at": at.isoformat(),
        "tac": signer.load_tac(
            card.card_no, after, card.online_counter, amount_fen, terminal_id, at
        ),
        "card_type": card.card_type,
        "rider_category": card.card_type,
        "full_fare_fen": 0,
        "fare_rule": "load",
        "route_id": None,
        "stop_id": None,
        "insured_fen": 0,
        "visit_id": None,
        "load_id": load_id,
        "offline_fallback": False,
        "deny_list_version": 0,
        "action_list_version": 0,
    }
    card.balance_fen = after
    card.online_counter += 1
    return record


def forged(record: dict[str, Any], amount_fen: int | None = None) -> dict[str, Any]:
    """The same record with a TAC the card never made (or a changed amount under the old TAC)."""
    out = dict(record)
    if amount_fen is not None:
        out["amount_fen"] = amount_fen
        out["balance_after_fen"] = out["balance_before_fen"] - amount_fen
    else:
        tac = bytes.fromhex(out["tac"])
        out["tac"] = bytes([tac[0] ^ 0x5A]).hex().upper() + tac[1:].hex().upper()
    return out
