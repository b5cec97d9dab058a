"""Why a resident's request was refused: each a typed error with a stable code (an RFC 9457
problem through clearing/http/problems.py) whose detail says what to do."""

from __future__ import annotations

from clearing.auth.service import Principal
from clearing.errors import Conflict, Forbidden, InvalidRequest, TooManyRequests, Unauthenticated


class LoginInvalid(InvalidRequest):
    code = "login_invalid"
    title = "Not an email address or a mobile number"


class LoginTaken(Conflict):
    code = "login_taken"
    title = "An account with this login exists"


class PasswordRefused(InvalidRequest):
    code = "password_refused"
    title = "The password does not meet the rules"


class LoginFailed(Unauthenticated):
    code = "login_failed"
    title = "The login or the password is wrong"


class LoginLocked(TooManyRequests):
    code = "login_locked"
    title = "Too many wrong passwords"


class RefreshRefused(Unauthenticated):
    code = "refresh_token_invalid"
    title = "The refresh token is unknown, expired or revoked"


class RefreshReused(Unauthenticated):
    code = "refresh_token_reused"
    title = "The refresh token was already used"


class RefreshRaced(Unauthenticated):
    """Not a refusal: the refresh token was used moments ago by a parallel request of the same
    browser (within its grace), whose new pair serves this request too (`principal`)."""

    code = "refresh_token_raced"
    title = "The refresh token was just used by a parallel request"

    def __init__(self, detail: str, principal: Principal) -> None:
        super().__init__(detail)
        self.principal = principal


class NotAResident(Forbidden):
    code = "not_a_resident"
    title = "This needs a resident's sign-in"


class CardProofWrong(InvalidRequest):
    code = "card_proof_wrong"
    title = "The card number and the proof do not match"


class CardLinkLocked(TooManyRequests):
    code = "card_link_locked"
    title = "Too many wrong card proofs"


class CardNotLinkable(Conflict):
    code = "card_not_linkable"
    title = "The card cannot be linked in its state"


class CardLinkedElsewhere(Conflict):
    code = "card_linked_to_another_resident"
    title = "Another resident has linked this card"


class CardNotUsable(Conflict):
    """For the workflows acting on a linked card (top-ups, bills): the card is lost, blocked,
    replaced or refunded."""

    code = "card_not_usable"
    title = "The card is not active"
