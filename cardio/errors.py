"""The cardio error family: every failure of card I/O is one of these, with a stable `code`.

Status words map to exception types through ONE table (`STATUS_ERRORS`); never compare SW bytes elsewhere.
Nothing here holds key material or full card numbers.

- `CardioError` (base, `code`, `message`)
  - `KeyStoreError`: a key store file is missing, malformed or readable by others
  - `CardFileError`: a software-card file (CARD.json) is missing or malformed
  - `ApduError`: an APDU cannot be encoded, or what the card sent cannot be parsed
    - `ResponseMalformed`: a short, long or malformed response (strict parsing, never IndexError)
  - `CardStatusError` (`sw`): the card answered a status word other than 9000
    - one subclass per status word of PURSE.md §2.5 (`InsufficientFunds` 9401, `PurseMacInvalid` 9302,
      `ProofNotAvailable` 9406, `FileNotFound` 6A82, `SecureMessagingMacInvalid` 6988, ...),
      `UnknownStatus` for the rest
  - `TransportError`: the link to the card failed
    - `CardRemoved` (pulled away mid-transaction), `NoCard`, `ReaderNotFound`, `ReaderUnavailable`
"""

from __future__ import annotations

__all__ = [
    "STATUS_ERRORS",
    "ApduError",
    "ApplicationLocked",
    "CardFileError",
    "CardRemoved",
    "CardStatusError",
    "CardioError",
    "ClassNotSupported",
    "ConditionsNotSatisfied",
    "FileNotFound",
    "InsNotSupported",
    "InsufficientFunds",
    "KeyNotSupported",
    "KeyStoreError",
    "NoCard",
    "OutOfRange",
    "ProofNotAvailable",
    "PurseMacInvalid",
    "RandomNotAvailable",
    "ReaderNotFound",
    "ReaderUnavailable",
    "RecordNotFound",
    "ResponseMalformed",
    "SecureMessagingMacInvalid",
    "SecureMessagingMissing",
    "SecurityStatusNotSatisfied",
    "TransportError",
    "UnknownStatus",
    "WrongData",
    "WrongLength",
    "WrongParameters",
    "error_for_status",
]


class CardioError(Exception):
    """Base of every cardio error. `code` is stable and machine-readable."""

    code = "cardio_error"

    def __init__(self, message: str = "") -> None:
        self.message = message or (self.__doc__ or self.code).strip().splitlines()[0]
        super().__init__(self.message)


class KeyStoreError(CardioError):
    """The key store file is missing, malformed or readable by others."""

    code = "key_store_invalid"


class CardFileError(CardioError):
    """The software card file is missing or malformed."""

    code = "card_file_invalid"


class ApduError(CardioError):
    """An APDU cannot be encoded or decoded."""

    code = "apdu_invalid"


class ResponseMalformed(ApduError):
    """The card's response is too short, too long or malformed for the command sent."""

    code = "response_malformed"


class CardStatusError(CardioError):
    """The card refused the command with a status word other than 9000."""

    code = "card_status"
    sw: int = 0

    def __init__(self, sw: int | None = None, message: str = "") -> None:
        if sw is not None:
            self.sw = sw
        base = message or (type(self).__doc__ or "card status").strip().splitlines()[0]
        super().__init__(f"{base} (SW {self.sw:04X})")


class PurseMacInvalid(CardStatusError):
    """MAC invalid: MAC1 at DEBIT or MAC2 at CREDIT FOR LOAD; the purse is unchanged."""

    code = "purse_mac_invalid"
    sw = 0x9302


class ApplicationLocked(CardStatusError):
    """The purse application is permanently locked."""

    code = "application_locked"
    sw = 0x9303


class InsufficientFunds(CardStatusError):
    """Insufficient balance for this purchase."""

    code = "insufficient_funds"
    sw = 0x9401


class OutOfRange(CardStatusError):
    """Out of range: the balance would exceed its limit, or a transaction counter is at its maximum."""

    code = "out_of_range"
    sw = 0x9402


class KeyNotSupported(CardStatusError):
    """The key index is not supported by the card."""

    code = "key_not_supported"
    sw = 0x9403


class ProofNotAvailable(CardStatusError):
    """No proof for that transaction: it was not performed."""

    code = "proof_not_available"
    sw = 0x9406


class WrongLength(CardStatusError):
    """Wrong length (Lc or Le)."""

    code = "wrong_length"
    sw = 0x6700


class SecurityStatusNotSatisfied(CardStatusError):
    """Security status not satisfied."""

    code = "security_status_not_satisfied"
    sw = 0x6982


class RandomNotAvailable(CardStatusError):
    """No valid random number: GET CHALLENGE first."""

    code = "random_not_available"
    sw = 0x6984


class ConditionsNotSatisfied(CardStatusError):
    """Conditions of use not satisfied (e.g. DEBIT without INITIALIZE first)."""

    code = "conditions_not_satisfied"
    sw = 0x6985


class SecureMessagingMissing(CardStatusError):
    """Secure-messaging MAC missing."""

    code = "secure_messaging_missing"
    sw = 0x6987


class SecureMessagingMacInvalid(CardStatusError):
    """Secure-messaging (line protection) MAC wrong; not the purse MAC1."""

    code = "secure_messaging_mac_invalid"
    sw = 0x6988


class WrongData(CardStatusError):
    """Incorrect parameters in the data field."""

    code = "wrong_data"
    sw = 0x6A80


class FileNotFound(CardStatusError):
    """File or application not found."""

    code = "file_not_found"
    sw = 0x6A82


class RecordNotFound(CardStatusError):
    """Record not found (end of the log)."""

    code = "record_not_found"
    sw = 0x6A83


class WrongParameters(CardStatusError):
    """Incorrect parameters P1-P2."""

    code = "wrong_parameters"
    sw = 0x6A86


class InsNotSupported(CardStatusError):
    """Instruction not supported."""

    code = "ins_not_supported"
    sw = 0x6D00


class ClassNotSupported(CardStatusError):
    """Class not supported."""

    code = "class_not_supported"
    sw = 0x6E00


class UnknownStatus(CardStatusError):
    """The card answered an unexpected status word."""

    code = "unknown_status"


class TransportError(CardioError):
    """The link to the card failed."""

    code = "transport_error"


class CardRemoved(TransportError):
    """The card was removed (or stopped answering) during the exchange."""

    code = "card_removed"


class NoCard(TransportError):
    """No card in the reader."""

    code = "no_card"


class ReaderNotFound(TransportError):
    """No reader with that name."""

    code = "reader_not_found"


class ReaderUnavailable(TransportError):
    """The PC/SC service is not running or not reachable (start it: bash scripts/pcsc.sh start)."""

    code = "reader_unavailable"


STATUS_ERRORS: dict[int, type[CardStatusError]] = {
    cls.sw: cls
    for cls in (
        PurseMacInvalid,
        ApplicationLocked,
        InsufficientFunds,
        OutOfRange,
        KeyNotSupported,
        ProofNotAvailable,
        WrongLength,
        SecurityStatusNotSatisfied,
        RandomNotAvailable,
        ConditionsNotSatisfied,
        SecureMessagingMissing,
        SecureMessagingMacInvalid,
        WrongData,
        FileNotFound,
        RecordNotFound,
        WrongParameters,
        InsNotSupported,
        ClassNotSupported,
    )
}
# Other ISO 7816-4 codes that mean the same to us.
STATUS_ERRORS[0x6B00] = WrongParameters


def error_for_status(sw: int) -> CardStatusError:
    """The typed exception for a status word (9000 is not an error: callers check it first)."""
    cls = STATUS_ERRORS.get(sw)
    if cls is None:
        return UnknownStatus(sw)
    return cls(sw)
