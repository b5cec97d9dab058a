"""The electronic purse, terminal side: PBOC ED/EP + JT/T 978 commands over any `Transport`.

Every method sends one command (plus GET RESPONSE rounds), checks the status word (typed errors from
`cardio.errors`) and parses the answer strictly into a frozen dataclass of `cardio.records`.
It holds no keys: MAC1 comes from the terminal's SAM, MAC2 goes back to it.

    purse = Purse(transport)
    sel = purse.select()                      # T-Union AID by default; sel.public_info if the FCI has it
    info = purse.read_public_info()           # 0015: card_no, card_type, validity
    init = purse.initialize_purchase(key_index, amount_fen, terminal_id, capp=True)
    purse.update_capp_data_cache(TransitRecord(...).encode())
    debit = purse.debit(terminal_serial, date_time, mac1)     # DebitResult(tac, mac2)
    proof = purse.get_transaction_proof(TxnType.CAPP_PURCHASE, init.offline_counter + 1)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cardio.apdu import CommandApdu, ResponseApdu, Transport, find_tlv, parse_tlv, transceive
from cardio.crypto import CryptoInputError, TxnType, bcd_date_time
from cardio.errors import (
    ApduError,
    FileNotFound,
    RecordNotFound,
    ResponseMalformed,
    WrongParameters,
)
from cardio.records import (
    HOLDER_LEN,
    LOG_RECORD_LEN,
    MANAGEMENT_LEN,
    PUBLIC_INFO_LEN,
    TRANSIT_RECORD_ID,
    TRANSIT_RECORD_LEN,
    TRIP_RECORD_LEN,
    DebitResult,
    HolderInfo,
    LoadInit,
    LogRecord,
    ManagementInfo,
    PublicInfo,
    PurchaseInit,
    TransactionProof,
    TransitRecord,
    TripRecord,
)

__all__ = [
    "AID_MOHURD_EP",
    "AID_TUNION_EP",
    "EP_DF_FID",
    "LOG_RECORDS_MAX",
    "PPSE_NAME",
    "SFI_HOLDER",
    "SFI_LOG",
    "SFI_MANAGEMENT",
    "SFI_PUBLIC_INFO",
    "SFI_TRANSIT",
    "SFI_TRIPS",
    "Purse",
    "SelectResult",
    "PurseCommands",
]

PPSE_NAME = b"2PAY.SYS.DDF01"
AID_TUNION_EP = bytes.fromhex("A000000632010105")  # T-Union "MOT_T_EP"
AID_MOHURD_EP = bytes.fromhex("A00000000386980701")  # 住建部 city-card EP
EP_DF_FID = b"\x10\x01"
SFI_PUBLIC_INFO = 0x15
SFI_HOLDER = 0x16
SFI_MANAGEMENT = 0x17
SFI_LOG = 0x18
SFI_TRANSIT = 0x1A
SFI_TRIPS = 0x1E
LOG_RECORDS_MAX = 10  # the cyclic log holds 10 records
TRIP_RECORDS_MAX = 10
EP = 0x02  # P2 of GET BALANCE / INITIALIZE: the electronic purse (01 would be the deposit ED)


@dataclass(frozen=True, slots=True)
class SelectResult:
    """What SELECT answered: the FCI, the DF name in it, and 0015 if the FCI carried it (tag 9F0C)."""

    fci: bytes
    df_name: bytes | None
    public_info: PublicInfo | None
    aids: tuple[bytes, ...] = ()  # for PPSE: the application AIDs listed (tag 4F)


class PurseCommands:
    """Builders of the purse's command APDUs (byte layouts of PURSE.md §2.2-2.3)."""

    @staticmethod
    def select_name(name: bytes) -> CommandApdu:
        return CommandApdu(0x00, 0xA4, 0x04, 0x00, name, le=256)

    @staticmethod
    def select_fid(fid: bytes) -> CommandApdu:
        return CommandApdu(0x00, 0xA4, 0x00, 0x00, fid, le=256)

    @staticmethod
    def read_binary(sfi: int, length: int, offset: int = 0) -> CommandApdu:
        return CommandApdu(0x00, 0xB0, 0x80 | sfi, offset, le=length)

    @staticmethod
    def read_record(sfi: int, record: int, length: int | None = None) -> CommandApdu:
        return CommandApdu(0x00, 0xB2, record, (sfi << 3) | 0x04, le=length or 256)

    @staticmethod
    def get_balance() -> CommandApdu:
        return CommandApdu(0x80, 0x5C, 0x00, EP, le=4)

    @staticmethod
    def initialize(p1: int, key_index: int, amount_fen: int, terminal_id: bytes) -> CommandApdu:
        _check_amount(amount_fen)
        if len(terminal_id) != 6:
            raise ApduError("terminal id must be 6 bytes")
        data = bytes((key_index,)) + amount_fen.to_bytes(4, "big") + bytes(terminal_id)
        return CommandApdu(0x80, 0x50, p1, EP, data, le=16 if p1 == 0x00 else 15)

    @staticmethod
    def update_capp_data_cache(sfi: int, record_id: int, record: bytes) -> CommandApdu:
        return CommandApdu(0x80, 0xDC, record_id, sfi << 3, bytes(record))

    @staticmethod
    def debit(terminal_serial: int, date_time: datetime | bytes, mac1: bytes) -> CommandApdu:
        if not 0 <= terminal_serial <= 0xFFFFFFFF or len(mac1) != 4:
            raise ApduError("terminal serial is 4 bytes unsigned and MAC1 is 4 bytes")
        data = terminal_serial.to_bytes(4, "big") + _bcd(date_time) + bytes(mac1)
        return CommandApdu(0x80, 0x54, 0x01, 0x00, data, le=8)

    @staticmethod
    def credit_load(date_time: datetime | bytes, mac2: bytes) -> CommandApdu:
        if len(mac2) != 4:
            raise ApduError("MAC2 is 4 bytes")
        return CommandApdu(0x80, 0x52, 0x00, 0x00, _bcd(date_time) + bytes(mac2), le=4)

    @staticmethod
    def get_transaction_proof(txn_type: int, counter_after: int) -> CommandApdu:
        if not 0 <= counter_after <= 0xFFFF:
            raise ApduError("the card counter is 2 bytes")
        return CommandApdu(0x80, 0x5A, 0x00, txn_type, counter_after.to_bytes(2, "big"), le=8)

    @staticmethod
    def update_binary_secure(sfi: int, offset: int, data: bytes, mac: bytes) -> CommandApdu:
        """UPDATE BINARY with line protection: CLA 04, data || MAC (Lc counts the MAC)."""
        if len(mac) != 4:
            raise ApduError("the line-protection MAC is 4 bytes")
        return CommandApdu(0x04, 0xD6, 0x80 | sfi, offset, bytes(data) + bytes(mac))

    @staticmethod
    def get_message() -> CommandApdu:
        return CommandApdu(0x80, 0xCA, 0x00, 0x00, le=9)

    @staticmethod
    def get_challenge(length: int = 4) -> CommandApdu:
        return CommandApdu(0x00, 0x84, 0x00, 0x00, le=length)


def _check_amount(amount_fen: int) -> None:
    if not isinstance(amount_fen, int) or not 0 <= amount_fen <= 0xFFFFFFFF:
        raise ApduError("an amount is 0..4294967295 fen")


def _bcd(date_time: datetime | bytes) -> bytes:
    try:
        return bcd_date_time(date_time)
    except CryptoInputError as error:
        raise ApduError(str(error)) from None


class Purse:
    """Terminal-side purse commands over a transport. Not thread-safe: one purse per card session."""

    __slots__ = ("transport",)

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def send(self, command: CommandApdu) -> ResponseApdu:
        """One command with 61xx/6Cxx handling; the status word is not checked."""
        return transceive(self.transport, command)

    # --- selection and files ---------------------------------------------------------------

    def select(self, aid: bytes = AID_TUNION_EP) -> SelectResult:
        """SELECT the purse application by name (FileNotFound, 6A82, for an unknown AID)."""
        return _parse_fci(self.send(PurseCommands.select_name(aid)).check())

    def select_any(self) -> SelectResult:
        """SELECT the purse however this card offers it: the T-Union AID, the 住建部 city-card AID,
        then the EP DF 1001 (FileNotFound if none exists)."""
        attempts: tuple[Callable[[], SelectResult], ...] = (
            lambda: self.select(AID_TUNION_EP),
            lambda: self.select(AID_MOHURD_EP),
            self.select_ep_df,
        )
        for attempt in attempts:
            try:
                return attempt()
            except (FileNotFound, WrongParameters):
                continue
        raise FileNotFound(message="no electronic purse on this card (T-Union, 住建部 or DF 1001)")

    def select_ppse(self) -> SelectResult:
        return _parse_fci(self.send(PurseCommands.select_name(PPSE_NAME)).check())

    def select_ep_df(self) -> SelectResult:
        """SELECT the EP DF by its file identifier 1001 (older cards)."""
        return _parse_fci(self.send(PurseCommands.select_fid(EP_DF_FID)).check())

    def read_public_info(self) -> PublicInfo:
        raw = self.send(PurseCommands.read_binary(SFI_PUBLIC_INFO, PUBLIC_INFO_LEN)).expect(
            PUBLIC_INFO_LEN, "0015"
        )
        return PublicInfo.parse(raw)

    def read_holder(self) -> HolderInfo:
        return HolderInfo.parse(
            self.send(PurseCommands.read_binary(SFI_HOLDER, HOLDER_LEN)).expect(HOLDER_LEN, "0016")
        )

    def read_management(self) -> ManagementInfo:
        raw = self.send(PurseCommands.read_binary(SFI_MANAGEMENT, MANAGEMENT_LEN)).expect(
            MANAGEMENT_LEN, "0017"
        )
        return ManagementInfo.parse(raw)

    def get_balance(self) -> int:
        """The purse balance in fen."""
        return int.from_bytes(
            self.send(PurseCommands.get_balance()).expect(4, "GET BALANCE"), "big"
        )

    def read_log(self, records_max: int = LOG_RECORDS_MAX) -> list[LogRecord]:
        """The transaction log 0018, most recent first, until 6A83 (no more records) or an
        unused slot (all 00 or all FF, which some cards answer instead of 6A83)."""
        if not 1 <= records_max <= LOG_RECORDS_MAX:
            raise ApduError(f"the log has at most {LOG_RECORDS_MAX} records")
        out: list[LogRecord] = []
        for n in range(1, records_max + 1):
            try:
                raw = self.send(PurseCommands.read_record(SFI_LOG, n, LOG_RECORD_LEN)).expect(
                    LOG_RECORD_LEN, "0018"
                )
            except RecordNotFound:
                break
            if raw in (bytes(LOG_RECORD_LEN), b"\xff" * LOG_RECORD_LEN):
                break
            out.append(LogRecord.parse(raw))
        return out

    def read_transit_record(self) -> TransitRecord:
        """The composite transit record in 001A (all-default if never written)."""
        command = PurseCommands.read_record(SFI_TRANSIT, TRANSIT_RECORD_ID, TRANSIT_RECORD_LEN)
        return TransitRecord.parse(self.send(command).expect(TRANSIT_RECORD_LEN, "001A"))

    def read_trips(self, records_max: int = TRIP_RECORDS_MAX) -> list[TripRecord]:
        """The public-transport process records in 001E, most recent first."""
        out: list[TripRecord] = []
        for n in range(1, min(records_max, TRIP_RECORDS_MAX) + 1):
            try:
                raw = self.send(PurseCommands.read_record(SFI_TRIPS, n, TRIP_RECORD_LEN)).expect(
                    TRIP_RECORD_LEN, "001E"
                )
            except RecordNotFound:
                break
            out.append(TripRecord.parse(raw))
        return out

    # --- purchase ----------------------------------------------------------------------------

    def initialize_purchase(
        self, key_index: int, amount_fen: int, terminal_id: bytes, capp: bool = False
    ) -> PurchaseInit:
        """INITIALIZE FOR PURCHASE (capp=False, type 06) or FOR CAPP PURCHASE (capp=True, type 09).

        InsufficientFunds (9401) when the balance cannot cover `amount_fen`.
        """
        command = PurseCommands.initialize(
            0x03 if capp else 0x01, key_index, amount_fen, terminal_id
        )
        return PurchaseInit.parse(self.send(command).expect(15, "INITIALIZE FOR PURCHASE"))

    def update_capp_data_cache(
        self, record: bytes, sfi: int = SFI_TRANSIT, record_id: int = TRANSIT_RECORD_ID
    ) -> None:
        """Cache a composite record; the card writes it atomically with the next DEBIT.
        For the cyclic 001E pass sfi=SFI_TRIPS, record_id=0."""
        self.send(PurseCommands.update_capp_data_cache(sfi, record_id, record)).expect(
            0, "UPDATE CAPP DATA CACHE"
        )

    def debit(self, terminal_serial: int, date_time: datetime | bytes, mac1: bytes) -> DebitResult:
        """DEBIT FOR (CAPP) PURCHASE. PurseMacInvalid (9302) if MAC1 is wrong: the purse is unchanged."""
        return DebitResult.parse(
            self.send(PurseCommands.debit(terminal_serial, date_time, mac1)).expect(8, "DEBIT")
        )

    # --- load --------------------------------------------------------------------------------

    def initialize_load(self, key_index: int, amount_fen: int, terminal_id: bytes) -> LoadInit:
        """INITIALIZE FOR LOAD; OutOfRange (9402) when the balance would exceed its limit."""
        command = PurseCommands.initialize(0x00, key_index, amount_fen, terminal_id)
        return LoadInit.parse(self.send(command).expect(16, "INITIALIZE FOR LOAD"))

    def credit_load(self, date_time: datetime | bytes, mac2: bytes) -> bytes:
        """CREDIT FOR LOAD with the host's MAC2; returns the TAC. PurseMacInvalid on a wrong MAC2."""
        return self.send(PurseCommands.credit_load(date_time, mac2)).expect(4, "CREDIT FOR LOAD")

    # --- recovery ----------------------------------------------------------------------------

    def get_transaction_proof(
        self, txn_type: int | TxnType, counter_after: int
    ) -> TransactionProof:
        """MAC ‖ TAC of the transaction whose counter after it is `counter_after` (INIT counter + 1).
        ProofNotAvailable (9406) when that transaction never happened."""
        command = PurseCommands.get_transaction_proof(int(txn_type), counter_after)
        return TransactionProof.parse(self.send(command).expect(8, "GET TRANSACTION PROOF"))

    def update_binary_secure(
        self, sfi: int, offset: int, data: bytes, mac_for: Callable[[bytes, bytes], bytes]
    ) -> None:
        """GET CHALLENGE, then UPDATE BINARY under line protection. `mac_for(challenge, apdu
        without MAC)` is the SAM's (or HSM's) MAC with the card's maintenance key. A wrong MAC is
        SecureMessagingMacInvalid (6988), not PurseMacInvalid."""
        challenge = self.get_challenge(4)
        header = bytes((0x04, 0xD6, 0x80 | sfi, offset, len(data) + 4))
        mac = mac_for(challenge, header + bytes(data))
        self.send(PurseCommands.update_binary_secure(sfi, offset, data, mac)).expect(
            0, "UPDATE BINARY"
        )

    def get_auth_code(self) -> bytes:
        """GET MESSAGE (80 CA 00 00 09) of 住建部 (CJ/T 166) cards: the 9-byte security code the card
        then expects appended to the MAC1 input (PURSE.md §3.6; `crypto.purchase_mac1(auth_code=...)`).
        Cards without it answer 6D00 (InsNotSupported)."""
        return self.send(PurseCommands.get_message()).expect(9, "GET MESSAGE")

    def get_challenge(self, length: int = 4) -> bytes:
        return self.send(PurseCommands.get_challenge(length)).expect(length, "GET CHALLENGE")


def _parse_fci(fci: bytes) -> SelectResult:
    if not fci:
        return SelectResult(fci=b"", df_name=None, public_info=None)
    items = parse_tlv(fci)
    if not items or items[0].tag != 0x6F:
        raise ResponseMalformed("FCI does not start with tag 6F")
    name = find_tlv(items, 0x84)
    public = find_tlv(items, 0x9F0C)
    info = None
    if public is not None and len(public.value) == PUBLIC_INFO_LEN:
        info = PublicInfo.parse(public.value)
    aids = []
    stack = list(items)
    while stack:
        item = stack.pop(0)
        if item.tag == 0x4F:
            aids.append(item.value)
        stack.extend(item.children)
    return SelectResult(
        fci=fci, df_name=name.value if name else None, public_info=info, aids=tuple(aids)
    )
