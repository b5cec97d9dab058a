"""Residents' pure rules: how a login (email or mobile number) is normalised, what a password
must be, what proves a card is in the holder's hand, and when a rate-limited try may come again.

Pure: no I/O, no clock (callers pass `now`). The request schemas use the same patterns, so a
login the schema admits always normalises (no 422 for a schema-valid body).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# -- logins ------------------------------------------------------------------------------------

EMAIL_LENGTH_MAX = 254  # RFC 5321 §4.5.3.1.3 (a path of 256 octets less the angle brackets)
EMAIL_PATTERN = r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$"
# E.164 (a + and 8 to 15 digits), or a mainland mobile number (11 digits, 13x … 19x).
PHONE_PATTERN = r"^(\+[1-9][0-9]{7,14}|1[3-9][0-9]{9})$"
LOGIN_PATTERN = f"({EMAIL_PATTERN})|({PHONE_PATTERN})"
MAINLAND_PREFIX = "+86"

_EMAIL = re.compile(EMAIL_PATTERN)
_PHONE = re.compile(PHONE_PATTERN)


class LoginKind(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"


@dataclass(frozen=True, slots=True)
class Login:
    kind: LoginKind
    value: str  # normalised: an email in lower case, a phone number in E.164


class LoginInvalid(ValueError):
    pass


LOGIN_RULE = (
    "a login is an email address (ASCII, e.g. han@example.cn) or a mobile number "
    "(+ and 8 to 15 digits, or 11 digits starting 13 … 19 for the mainland), without spaces"
)


def normalise_login(text: str) -> Login:
    """One account per person whatever the case or the form of the number: emails compare in
    lower case (every provider residents use treats them so), a mainland mobile number gets
    +86 in front. Raises LoginInvalid (saying what a login is) for anything else."""
    if len(text) <= EMAIL_LENGTH_MAX and _EMAIL.fullmatch(text):
        return Login(LoginKind.EMAIL, text.lower())
    if _PHONE.fullmatch(text):
        return Login(LoginKind.PHONE, text if text.startswith("+") else MAINLAND_PREFIX + text)
    raise LoginInvalid(LOGIN_RULE)


# -- passwords ---------------------------------------------------------------------------------

PASSWORD_LENGTH_MIN = 10
PASSWORD_LENGTH_MAX = 128  # Argon2 takes more; a bound keeps hashing cost bounded
# NIST SP 800-63B §5.1.1.2: length and a list of known-bad passwords, no composition rules.
COMMON_PASSWORDS = frozenset(
    {
        "1234567890",
        "0123456789",
        "1111111111",
        "0000000000",
        "1234512345",
        "123456789a",
        "a123456789",
        "password12",
        "password123",
        "password1234",
        "qwertyuiop",
        "1q2w3e4r5t",
        "iloveyou12",
        "woaini1314",
        "aaaaaaaaaa",
        "9876543210",
        "12345678910",
        "qwerty1234",
        "asdfghjkl1",
        "zxcvbnm123",
        "letmein123",
        "welcome123",
        "admin12345",
        "abcdefghij",
        "abc1234567",
        "onecard123",
    }
)
PASSWORD_RULE = (
    f"a password is {PASSWORD_LENGTH_MIN} to {PASSWORD_LENGTH_MAX} characters, is not your "
    "login, and is not a well-known one such as 1234567890 or password123"
)


def password_problem(password: str, login: str) -> str | None:
    """Why this password is refused (the rule, stated), or None if it is acceptable."""
    if not PASSWORD_LENGTH_MIN <= len(password) <= PASSWORD_LENGTH_MAX:
        return PASSWORD_RULE
    folded = password.casefold()
    if folded in COMMON_PASSWORDS or folded == login.casefold():
        return PASSWORD_RULE
    return None


# -- card proof --------------------------------------------------------------------------------


class ProofKind(enum.StrEnum):
    """What the holder tells about the card, from the card or its last receipt.

    - balance: the card's balance in fen after its last tap that clearing has cleared (shown by
      the validator, the kiosk, a receipt, or a phone reading the card over NFC); a card with
      no cleared tap yet: its balance in the books (its first load).
    - last_load: the amount in fen of the card's last cleared load (the first load at issue
      if none cleared since).
    """

    BALANCE = "balance"
    LAST_LOAD = "last_load"


@dataclass(frozen=True, slots=True)
class CardEvidence:
    """What clearing knows of a card that only its holder also knows."""

    last_balance_after_fen: int | None  # the last cleared tap's balance after
    ledger_balance_fen: int | None  # card:<no> in the books
    last_load_fen: int | None  # the last cleared load, or the first load at issue


def proof_matches(kind: ProofKind, amount_fen: int, evidence: CardEvidence) -> bool:
    """Whether the holder's answer is what clearing knows. Both the last cleared balance and the
    books' balance are accepted: they are equal once every cleared tap is posted, and a fresh
    card has only the second."""
    if kind is ProofKind.BALANCE:
        known = (evidence.last_balance_after_fen, evidence.ledger_balance_fen)
        return any(value is not None and value == amount_fen for value in known)
    return evidence.last_load_fen is not None and evidence.last_load_fen == amount_fen


# -- rate limits -------------------------------------------------------------------------------


def retry_after_s(
    failures: Sequence[datetime], *, now: datetime, failures_max: int, window: timedelta
) -> int | None:
    """Seconds until another try is allowed, or None if one is allowed now.

    A sliding window: at most `failures_max` failures within any `window`. With the failures
    inside the window sorted, the next try is allowed when the oldest of the last
    `failures_max` leaves the window."""
    recent = sorted(at for at in failures if now - window < at <= now)
    if len(recent) < failures_max:
        return None
    oldest_counted = recent[len(recent) - failures_max]
    wait = oldest_counted + window - now
    return max(1, int(-(-wait.total_seconds() // 1)))  # whole seconds, rounded up


@dataclass(frozen=True, slots=True)
class PasswordLimit:
    """The limit on wrong passwords of one account (a resident's login, a staff sign-in): at most
    `failures_max` within `window`; a successful sign-in forgives the failures before it."""

    failures_max: int
    window: timedelta

    def counted_since(self, now: datetime, last_login_at: datetime | None) -> datetime:
        """The failures that count are those after this (the window, or the last sign-in)."""
        since = now - self.window
        if last_login_at is not None and last_login_at > since:
            since = last_login_at
        return since

    def wait_s(self, failures: Sequence[datetime], now: datetime) -> int | None:
        return retry_after_s(failures, now=now, failures_max=self.failures_max, window=self.window)

    def locked(self, wait_s: int) -> str:
        """What a locked account is told."""
        return (
            f"{self.failures_max} wrong passwords within {self.window_minutes} minutes: "
            f"try again in {wait_s} s"
        )

    def wrong(self, login_name: str) -> str:
        """What a wrong password is told (`login_name`: "login", "username")."""
        return (
            f"the {login_name} or the password is wrong; after {self.failures_max} wrong "
            f"passwords the account waits {self.window_minutes} minutes"
        )

    @property
    def window_minutes(self) -> int:
        return int(self.window.total_seconds()) // 60
