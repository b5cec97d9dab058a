"""Reference purchase and load flows with issuer master keys in the clear: for tests, bench and demos.

A real terminal never holds master keys: its SAM computes MAC1 and checks MAC2 (terminals/), and
the load MAC2 comes from the back office's HSM. This module is the executable spec both follow.
It must never be used with production keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cardio import crypto
from cardio.crypto import TxnType
from cardio.errors import PurseMacInvalid
from cardio.keystore import KeyKind, KeyStore
from cardio.purse import Purse
from cardio.records import DebitResult, PublicInfo, PurchaseInit

__all__ = ["ClearKeys", "LoadOutcome", "PurchaseOutcome", "load", "purchase"]


@dataclass(frozen=True, slots=True)
class ClearKeys:
    """The master keys a software SAM / load host would hold, taken from a key store."""

    store: KeyStore

    def sespk(self, app_serial: bytes, init: PurchaseInit, terminal_serial: int) -> bytes:
        master = self.store.master(KeyKind.PURCHASE)
        dpk = crypto.diversify_key(master.key, app_serial, init.algorithm)
        return crypto.purchase_session_key(
            dpk, init.card_random, init.offline_counter, terminal_serial, init.algorithm
        )

    def line_protection(self, app_serial: bytes) -> Callable[[bytes, bytes], bytes]:
        """`mac_for(challenge, apdu)` with the card's maintenance key, for Purse.update_binary_secure."""
        master = self.store.master(KeyKind.MAINTENANCE)
        key = crypto.diversify_key(master.key, app_serial, self.store.algorithm)

        def mac_for(challenge: bytes, apdu: bytes) -> bytes:
            return crypto.secure_messaging_mac(key, challenge, apdu, self.store.algorithm)

        return mac_for

    def seslk(self, app_serial: bytes, card_random: bytes, online_counter: int) -> bytes:
        master = self.store.master(KeyKind.LOAD)
        dlk = crypto.diversify_key(master.key, app_serial, self.store.algorithm)
        return crypto.load_session_key(dlk, card_random, online_counter, self.store.algorithm)


@dataclass(frozen=True, slots=True)
class PurchaseOutcome:
    init: PurchaseInit
    debit: DebitResult
    txn_type: TxnType
    terminal_serial: int
    amount_fen: int

    @property
    def balance_after_fen(self) -> int:
        return self.init.balance_fen - self.amount_fen


@dataclass(frozen=True, slots=True)
class LoadOutcome:
    balance_before_fen: int
    balance_after_fen: int
    online_counter: int
    tac: bytes


def purchase(
    purse: Purse,
    keys: ClearKeys,
    info: PublicInfo,
    amount_fen: int,
    terminal_id: bytes,
    terminal_serial: int,
    when: datetime,
    capp_record: bytes | None = None,
) -> PurchaseOutcome:
    """INITIALIZE (CAPP if a record is given), UPDATE CAPP DATA CACHE, DEBIT, check MAC2."""
    capp = capp_record is not None
    key_index = keys.store.master(KeyKind.PURCHASE).index
    init = purse.initialize_purchase(key_index, amount_fen, terminal_id, capp=capp)
    txn_type = TxnType.CAPP_PURCHASE if capp else TxnType.EP_PURCHASE
    sespk = keys.sespk(info.app_serial, init, terminal_serial)
    mac1 = crypto.purchase_mac1(
        sespk, amount_fen, txn_type, terminal_id, when, algorithm=init.algorithm
    )
    if capp_record is not None:
        purse.update_capp_data_cache(capp_record)
    debit = purse.debit(terminal_serial, when, mac1)
    if crypto.purchase_mac2(sespk, amount_fen, init.algorithm) != debit.mac2:
        raise PurseMacInvalid(message="the card's MAC2 does not verify")
    return PurchaseOutcome(init, debit, txn_type, terminal_serial, amount_fen)


def load(
    purse: Purse,
    keys: ClearKeys,
    info: PublicInfo,
    amount_fen: int,
    terminal_id: bytes,
    when: datetime,
) -> LoadOutcome:
    """INITIALIZE FOR LOAD, check the card's MAC1, CREDIT FOR LOAD with the host's MAC2."""
    key_index = keys.store.master(KeyKind.LOAD).index
    init = purse.initialize_load(key_index, amount_fen, terminal_id)
    seslk = keys.seslk(info.app_serial, init.card_random, init.online_counter)
    mac1 = crypto.load_mac1(
        seslk, init.balance_fen, amount_fen, TxnType.EP_LOAD, terminal_id, init.algorithm
    )
    if mac1 != init.mac1:
        raise PurseMacInvalid(message="the card's load MAC1 does not verify")
    mac2 = crypto.load_mac2(seslk, amount_fen, TxnType.EP_LOAD, terminal_id, when, init.algorithm)
    tac = purse.credit_load(when, mac2)
    return LoadOutcome(init.balance_fen, init.balance_fen + amount_fen, init.online_counter, tac)
