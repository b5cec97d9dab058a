"""What a software card keeps in non-volatile memory: the purse, counters, files, keys, proofs.

Plain values shared by the card logic (cardio.softcard) and its file (cardio.cardfile); no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cardio.keystore import CardKeys

BALANCE_LIMIT_FEN_DEFAULT = 100_000  # 1,000 CNY, the usual e-purse ceiling
COUNTER_MAX = 0xFFFF


@dataclass(frozen=True, slots=True)
class Proof:
    """What GET TRANSACTION PROOF returns for the last transaction of one kind."""

    txn_type: int
    counter_after: int
    mac: bytes
    tac: bytes


@dataclass(slots=True)
class CardState:
    """Everything the card keeps in non-volatile memory."""

    public_info: bytes
    holder: bytes
    management: bytes
    keys: CardKeys = field(repr=False)
    balance_fen: int = 0
    balance_limit_fen: int = BALANCE_LIMIT_FEN_DEFAULT
    overdraft_limit_fen: int = 0
    online_counter: int = 0
    offline_counter: int = 0
    log: list[bytes] = field(default_factory=list)  # newest first
    transit_records: dict[int, bytes] = field(default_factory=dict)  # 001A by record id
    trips: list[bytes] = field(default_factory=list)  # 001E, newest first
    last_purchase: Proof | None = None
    last_load: Proof | None = None

    @property
    def card_no(self) -> str:
        """The 16-digit card number (bytes 12..19 of 0015)."""
        return self.public_info[12:20].hex().upper()
