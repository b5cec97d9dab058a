"""Request and response bodies of the registry API (participants, terminals, cards)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cardio.cardstate import BALANCE_LIMIT_FEN_DEFAULT
from clearing.http.bodies import JSON_ENUM, JsonInt, RequestModel, omittable
from clearing.registry.models import (
    CardEventKind,
    CardStatus,
    CardType,
    ParticipantKind,
    ParticipantStatus,
    TerminalKind,
    TerminalStatus,
)

AMOUNT_FEN_MAX = 2**32 - 1  # the purse holds a 4-byte unsigned balance
DEPOSIT_FEN_MAX = 100_000  # 1,000 CNY: a deposit above this is a typing mistake
FIRST_LOAD_FEN_MAX = BALANCE_LIMIT_FEN_DEFAULT  # the chip refuses a balance above its limit

ParticipantCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,31}$")]
TerminalId = Annotated[str, StringConstraints(pattern=r"^[0-9A-F]{12}$")]
CardNo = Annotated[str, StringConstraints(pattern=r"^[0-9]{16}$")]
PublicKeyHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]
Scheme = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]
# IBAN (up to 34) or a Chinese bank account number (16-19 digits), spaces allowed in groups.
BankAccount = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9 ]{7,39}$")]
Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Line = Annotated[str, StringConstraints(min_length=1, max_length=64)]
HolderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500)]
PaidBy = Literal["cash", "bank"]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ParticipantCreate(RequestModel):
    code: ParticipantCode = Field(description="Short id; names the account payable:<code>")
    name: Text200
    kind: Annotated[ParticipantKind, JSON_ENUM]
    commission_bp: JsonInt = Field(ge=0, le=10_000, description="Commission in basis points")
    bank_account: BankAccount
    bank_name: Text200
    scheme: Scheme | None = Field(default=None, description="Insurer / subsidy fund: its scheme")


class ParticipantUpdate(RequestModel):
    """What to change; a field left out keeps its value (none may be null)."""

    name: Text200 = omittable()
    commission_bp: JsonInt = omittable(ge=0, le=10_000)
    bank_account: BankAccount = omittable()
    bank_name: Text200 = omittable()
    status: Annotated[ParticipantStatus, JSON_ENUM] = omittable()


class ParticipantOut(_Out):
    code: str
    name: str
    kind: ParticipantKind
    commission_bp: int
    bank_account: str
    bank_name: str
    scheme: str | None
    status: ParticipantStatus
    created_at: datetime


class TerminalCreate(RequestModel):
    terminal_id: TerminalId = Field(description="The SAM's terminal number, 12 upper-case hex")
    participant: ParticipantCode = Field(description="Code of the owning participant")
    kind: Annotated[TerminalKind, JSON_ENUM]
    line: Line | None = Field(default=None, description="Bus line / route id, or counter name")
    public_key: PublicKeyHex = Field(description="Ed25519 public key, raw 32 bytes in hex")


class TerminalUpdate(RequestModel):
    """What to change; a field left out keeps its value (none may be null)."""

    status: Annotated[TerminalStatus, JSON_ENUM] = omittable()
    line: Line = omittable()
    public_key: PublicKeyHex = omittable()


class TerminalOut(_Out):
    terminal_id: str
    participant: str
    kind: TerminalKind
    line: str | None
    public_key: str
    status: TerminalStatus
    seq_high: int | None
    created_at: datetime


class CardIssue(RequestModel):
    card_no: CardNo
    card_type: Annotated[CardType, JSON_ENUM]
    holder_id: HolderId = Field(description="The resident's id (what a resident token names)")
    holder_name: Text200
    scheme: Scheme | None = Field(default=None, description="Medical-insurance scheme")
    deposit_fen: JsonInt = Field(ge=0, le=DEPOSIT_FEN_MAX)
    first_load_fen: JsonInt = Field(
        ge=0,
        le=FIRST_LOAD_FEN_MAX,
        description=f"At most the chip's balance limit, {FIRST_LOAD_FEN_MAX} fen",
    )
    paid_by: PaidBy = Field(default="cash", description="cash at the counter, or bank transfer")


class CardIssueRun(RequestModel):
    """A personalisation run: many cards issued in one transaction."""

    cards: list[CardIssue] = Field(min_length=1, max_length=2000)


class CardReplace(RequestModel):
    new_card_no: CardNo
    reason: Reason


class CardReason(RequestModel):
    reason: Reason


class CardRefund(RequestModel):
    reason: Reason
    paid_by: PaidBy = Field(default="cash", description="paid out in cash, or to a bank account")


class CardOut(_Out):
    card_no: str
    card_type: CardType
    holder_id: str
    holder_name: str
    scheme: str | None
    status: CardStatus
    deposit_fen: int
    replaced_by: str | None
    replaces: str | None
    issued_at: datetime
    status_changed_at: datetime


class CardEventOut(_Out):
    kind: CardEventKind
    actor: str
    reason: str | None
    amount_fen: int | None
    at: datetime


class CardDetail(BaseModel):
    card: CardOut
    balance_fen: int | None = Field(description="Ledger balance of card:<no> (None: no ledger)")
    events: list[CardEventOut]


class ReplacementOut(_Out):
    old_card_no: str
    new_card_no: str
    state: str
    deny_list_version: int
    requested_at: datetime
    moved_at: datetime | None
    moved_fen: int | None
    load_id: str | None
