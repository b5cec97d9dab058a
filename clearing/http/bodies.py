"""JSON request bodies: one strict reading for every body the API accepts.

A key twice in one object is refused (at any depth): the service stores some bodies raw, and
another JSON parser would read the other value of the key. Request models are strict: an integer
is a JSON integer, a boolean a JSON boolean, and unknown keys are refused, so what the schema
says and what the code takes agree. Never lenient on money fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, Strict

from clearing.errors import InvalidRequest


class DuplicateKey(InvalidRequest, HTTPException):
    """A JSON object names one key twice (RFC 8259 §4: names SHOULD be unique; we require it).

    Also an HTTPException so that FastAPI, which reads bodies before it runs dependencies, lets
    it through as it is instead of answering a generic 400; it leaves as a 422 problem."""

    code = "duplicate_key"
    title = "The JSON body names a key twice"

    def __init__(self, key: str) -> None:
        detail = f'key "{key}" appears twice in one JSON object: send each key once'
        HTTPException.__init__(self, status_code=self.status, detail=detail)
        self.detail = detail
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for key, value in pairs:
        if key in members:
            raise DuplicateKey(key)
        members[key] = value
    return members


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259 §6); Python's json module takes them by default.
    raise ValueError(f"{name} is not a JSON value")


def load_json(raw: bytes | str) -> Any:
    """Parse a JSON document, refusing duplicate keys at any depth (DuplicateKey), NaN and
    Infinity (ValueError). Malformed JSON raises json.JSONDecodeError."""
    return json.loads(raw, object_pairs_hook=_unique_keys, parse_constant=_no_constant)


def checked_json(raw: bytes) -> bytes:
    """The raw body, unchanged, once it is known to name no key twice: for endpoints that
    validate the raw bytes themselves (a terminal's upload, after its signature verified).
    Malformed JSON is left to the model's own JSON validation, which locates the error."""
    try:
        load_json(raw)
    except ValueError:
        # Malformed JSON (JSONDecodeError is a ValueError), NaN, Infinity: the model's JSON
        # validation refuses them and says where.
        return raw
    return raw


class StrictJsonRequest(Request):
    """A request whose `json()` refuses duplicate keys: FastAPI reads JSON bodies through it."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = load_json(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """Every route of the API: its JSON body is read by `StrictJsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler


class RequestModel(BaseModel):
    """Base of every request body: strict types, unknown keys refused (additionalProperties:
    false in the schema). FastAPI validates a parsed body in Python mode, where strict mode
    would refuse an enum's value or an ISO date string that JSON mode takes: fields of those
    types use the JSON-mode types below, so the body means what it means in JSON."""

    model_config = ConfigDict(strict=True, extra="forbid")


def _json_text(value: Any) -> Any:
    """Dates and times come as JSON strings (ISO 8601), never numbers."""
    if isinstance(value, str | datetime):
        return value
    raise ValueError("a date or time is an ISO 8601 string")


def _integral_number(value: Any) -> Any:
    """JSON Schema's integer is any number without a fraction (RFC 8259 has no integer type):
    20429998.0 is one. Strings and booleans stay refused by the strict int after this."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer field of a request model: a JSON number without a fraction, never "100" or true.
JsonInt = Annotated[int, BeforeValidator(_integral_number)]

# JSON-mode strictness in Python mode: the value's JSON type is checked, then the lax parser
# reads the string exactly as strict JSON mode does.
Instant = Annotated[AwareDatetime, BeforeValidator(_json_text), Strict(False)]
# A calendar day of a request model: a JSON string YYYY-MM-DD, never a number.
JsonDate = Annotated[date, BeforeValidator(_json_text), Strict(False)]
# An enum field of a request model, `Annotated[SomeStrEnum, JSON_ENUM]`: in Python mode strict
# enums take only members; lax ones take the value, and a JSON value that is not one of the
# (string) values is still refused.
JSON_ENUM = Strict(False)


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omittable(**constraints: Any) -> Any:
    """A field that a change (PATCH) may leave out but never set to null: absent means "keep",
    and the schema says the value, when sent, is never null."""
    return Field(default=None, json_schema_extra=_drop_default, **constraints)
