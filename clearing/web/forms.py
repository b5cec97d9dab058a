"""Forms that refuse bad input kindly: each field keeps what was typed and shows its message
next to it, in the page's language (templates/forms.html renders them).

A form checks only the shape of what was typed (present, not too long, an amount with at most
two decimals); the rules belong to the services, whose errors a handler puts on the field they
concern with `Form.refuse`. Passwords are never sent back to the browser.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from clearing.errors import ClearingError, TooManyRequests
from clearing.web.i18n import N_

T = TypeVar("T")

TEXT_LENGTH_MAX = 200


class InputKind(enum.StrEnum):
    TEXT = "text"
    PASSWORD = "password"
    EMAIL = "email"
    AMOUNT = "amount"  # yuan with at most two decimals; read as integer fen
    NUMBER = "number"  # digits only (card numbers, codes)
    HIDDEN = "hidden"
    CHOICE = "choice"  # one of `choices` (radio buttons)


@dataclass(frozen=True, slots=True)
class Message:
    """A message for the reader: a catalog msgid and its placeholders, translated when shown."""

    msgid: str
    values: tuple[tuple[str, str | int], ...] = ()


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    label: str  # a msgid (marked with N_)
    kind: InputKind = InputKind.TEXT
    required: bool = True
    length_max: int = TEXT_LENGTH_MAX
    hint: str | None = None  # a msgid shown under the label
    autocomplete: str | None = None
    choices: tuple[tuple[str, str], ...] = ()  # (value, label msgid)


@dataclass
class Form:
    """Fields with what the person typed (`values`) and the messages for them (`errors`)."""

    fields: tuple[Field, ...]
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, Message] = field(default_factory=dict)
    error: Message | None = None  # about the whole form (shown above it)

    def field(self, name: str) -> Field:
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    def value(self, name: str) -> str:
        if self.field(name).kind is InputKind.PASSWORD:
            return ""
        return self.values.get(name, "")

    @property
    def valid(self) -> bool:
        return not self.errors and self.error is None

    def refuse(self, name: str | None, msgid: str, **values: str | int) -> None:
        """Put a message on a field (or, with name None, on the whole form)."""
        message = Message(msgid, tuple(values.items()))
        if name is None:
            self.error = message
        else:
            self.errors.setdefault(name, message)

    def text(self, name: str) -> str:
        return self.values.get(name, "").strip()

    def amount_fen(self, name: str) -> int:
        """The amount typed in yuan, as integer fen (call after `bind` found it valid)."""
        return _fen(self.values.get(name, "")) or 0


# Yuan as people type them: ASCII digits, at most two decimals ("50", "12.5", ".5", "1,200.00",
# "¥8"). Exponents ("1e2"), signs and other scripts' digits are not amounts.
_YUAN = re.compile(r"(?=\.?[0-9])([0-9]{0,9})(?:\.([0-9]{0,2}))?")


def _fen(text: str) -> int | None:
    cleaned = text.strip().replace(",", "").replace("¥", "").replace("￥", "")
    found = _YUAN.fullmatch(cleaned)
    if found is None:
        return None
    whole, cents = found.group(1), found.group(2) or ""
    return int(whole or "0") * 100 + int(cents.ljust(2, "0"))


def blank(*fields: Field, **values: str) -> Form:
    return Form(fields, dict(values))


def bind(fields: tuple[Field, ...], submitted: dict[str, str]) -> Form:
    """The form as submitted, with a message on each field whose shape is wrong."""
    form = Form(fields, {f.name: submitted.get(f.name, "") for f in fields})
    for spec in fields:
        raw = form.values[spec.name]
        text = raw if spec.kind is InputKind.PASSWORD else raw.strip()
        if not text:
            if spec.required:
                form.refuse(spec.name, N_("Please fill in this field."))
            continue
        if len(text) > spec.length_max:
            form.refuse(spec.name, N_("At most %(count)s characters."), count=spec.length_max)
        elif spec.kind is InputKind.AMOUNT and (_fen(text) is None or (_fen(text) or 0) <= 0):
            form.refuse(spec.name, N_("Type an amount in yuan, such as 50 or 12.50."))
        elif spec.kind is InputKind.NUMBER and not (text.isascii() and text.isdigit()):
            form.refuse(spec.name, N_("Digits only, please."))
        elif spec.kind is InputKind.EMAIL and "@" not in text:
            form.refuse(spec.name, N_("Type an email address."))
        elif spec.kind is InputKind.CHOICE and text not in {v for v, _ in spec.choices}:
            form.refuse(spec.name, N_("Choose one of the options."))
    return form


async def signed_in(
    form: Form,
    sign_in: Callable[[str, str], Awaitable[T]],
    *,
    login: str,
    wrong: str,
    failed: type[ClearingError],
    locked: type[TooManyRequests],
) -> T | None:
    """A sign-in form's try (residents' and staff's): what `sign_in(login, password)` gives for
    a valid form, else None with the refusal on the form: a wrong password (`failed`; returned,
    not raised, so the request commits it and it counts) on the password field as `wrong`, a
    locked account (`locked`) above the form, in whole minutes."""
    if not form.valid:
        return None
    try:
        return await sign_in(form.text(login), form.values["password"])
    except failed:
        form.refuse("password", wrong)
    except locked as error:
        form.refuse(
            None,
            N_("Too many wrong passwords. Try again in %(minutes)s minutes."),
            minutes=max(1, -(-error.retry_after_s // 60)),
        )
    return None
