"""Why a staff sign-in or account change was refused: typed errors with stable codes."""

from __future__ import annotations

from clearing.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    TooManyRequests,
    Unauthenticated,
)


class StaffSignInFailed(Unauthenticated):
    code = "staff_sign_in_failed"
    title = "The username or the password is wrong"


class StaffLocked(TooManyRequests):
    code = "staff_locked"
    title = "Too many wrong passwords"


class StaffRoleNotHeld(Forbidden):
    code = "staff_role_not_held"
    title = "The staff account does not hold that role"


class NotASignIn(Conflict):
    code = "not_a_sign_in"
    title = "The token was not issued by a sign-in"


class StaffAccountInvalid(InvalidRequest):
    code = "staff_account_invalid"
    title = "The staff account is not valid"


class StaffTaken(Conflict):
    code = "staff_username_taken"
    title = "A staff account with this username exists"


class StaffUnknown(NotFound):
    code = "staff_unknown"
    title = "No such staff account"
