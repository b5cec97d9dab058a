"""Request and response bodies of residents' API: accounts, sign-in tokens, linked cards.

Requests are strict (clearing/http/bodies.py). The schema states the rules the service checks
(login pattern, password length and the known-bad list), so a body the schema admits is never
refused as malformed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from clearing.auth.models import Role
from clearing.http.bodies import JSON_ENUM, JsonInt, RequestModel
from clearing.registry.models import CardStatus, CardType
from clearing.residents import rules
from clearing.residents.rules import LoginKind, ProofKind

AMOUNT_FEN_MAX = 2**32 - 1  # the purse holds a 4-byte unsigned balance
REFRESH_TOKEN_PATTERN = r"^ocr_[A-Za-z0-9_-]{43}$"

LoginText = Annotated[
    str, StringConstraints(max_length=rules.EMAIL_LENGTH_MAX, pattern=rules.LOGIN_PATTERN)
]
CardNo = Annotated[str, StringConstraints(pattern=r"^[0-9]{16}$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=40)]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


def _not_a_known_password(schema: dict) -> None:
    schema["not"] = {"enum": sorted(rules.COMMON_PASSWORDS)}


class SignUp(RequestModel):
    login: LoginText = Field(description=rules.LOGIN_RULE)
    password: str = Field(
        min_length=rules.PASSWORD_LENGTH_MIN,
        max_length=rules.PASSWORD_LENGTH_MAX,
        description=rules.PASSWORD_RULE,
        json_schema_extra=_not_a_known_password,
    )
    display_name: DisplayName | None = Field(default=None, description="How the app greets you")


class LogIn(RequestModel):
    login: LoginText = Field(description="The email address or mobile number you signed up with")
    password: str = Field(min_length=1, max_length=rules.PASSWORD_LENGTH_MAX)


class Refresh(RequestModel):
    refresh_token: str = Field(
        pattern=REFRESH_TOKEN_PATTERN, description="The refresh token of the last pair (one use)"
    )


class Proof(RequestModel):
    kind: Annotated[ProofKind, JSON_ENUM] = Field(description=ProofKind.__doc__)
    amount_fen: JsonInt = Field(ge=0, le=AMOUNT_FEN_MAX, description="The amount, in fen")


class CardLinkRequest(RequestModel):
    card_no: CardNo = Field(description="The 16-digit number printed on the card")
    proof: Proof
    label: Label | None = Field(default=None, description="Whose card it is, e.g. grandma's")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ResidentOut(_Out):
    id: str = Field(description="The resident id (what the resident's access tokens name)")
    login: str = Field(description="Normalised: lower-case email, or E.164 phone number")
    login_kind: LoginKind
    display_name: str | None
    created_at: datetime


class MeOut(BaseModel):
    role: Role
    subject: str | None
    resident: ResidentOut | None = Field(
        description="The resident's account (a resident signed in with an account), else null"
    )


class TokenPairOut(BaseModel):
    token_type: Literal["bearer"] = "bearer"
    access_token: str = Field(description="Send as `Authorization: Bearer <token>`")
    expires_in: int = Field(description="Seconds the access token lives")
    access_expires_at: datetime
    refresh_token: str = Field(description="Trade it once at POST /v1/auth/refresh")
    refresh_expires_at: datetime
    resident_id: str


class LinkedCardOut(BaseModel):
    card_no: str
    card_type: CardType
    status: CardStatus
    label: str | None
    linked_at: datetime
    balance_fen: int | None = Field(description="card:<no> in the books (null: no ledger)")
    pending_fen: int | None = Field(description="card-pending:<no>: paid, not yet on the card")


class PendingLoadOut(BaseModel):
    load_id: str
    amount_fen: int
    source: str
    created_at: datetime
    expires_at: datetime


class CardDetailOut(LinkedCardOut):
    replaced_by: str | None = Field(description="The card that replaced this one, if any")
    pending_loads: list[PendingLoadOut] = Field(
        description="Loads on the action list, written onto the card at its next tap on a "
        "load-capable terminal"
    )
    last_reported_balance_fen: int | None = Field(
        description="The balance the card reported in its last cleared tap (null: none yet)"
    )
    last_tap_at: datetime | None


class HistoryItemOut(BaseModel):
    card_counter: int = Field(description="The card's own transaction counter")
    kind: str = Field(description="purchase (a fare or a payment), load, clinic")
    occurred_at: datetime
    amount_fen: int
    balance_before_fen: int
    balance_after_fen: int
    participant_code: str = Field(description="Who was paid (or who loaded)")
    route_id: str | None
    load_id: str | None
