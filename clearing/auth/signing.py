"""Terminal request signatures per RFC 9421 (HTTP Message Signatures, Ed25519): parse, check, verify.

Pure: no I/O, no clock (the caller passes `now_s`). What a terminal must sign is fixed here
(docs/terminal-protocol.md); the signature base itself is built and verified by the maintained
`http-message-signatures` library, and the body digest (RFC 9530) by its ContentDigest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)

from clearing.errors import SignatureRequired

HEADER_TERMINAL_ID = "Onecard-Terminal-Id"
COMPONENT_TERMINAL_ID = "onecard-terminal-id"
ALGORITHM = "ed25519"
REQUIRED_PARAMETERS = ("created", "nonce", "keyid", "alg")
RETIRED_HEADERS = ("x-onecard-signature", "x-onecard-nonce", "x-onecard-timestamp")

TIMESTAMP_SKEW_S_MAX = 300  # `created` may be this far from the server's clock, either way
SIGNATURE_FIELD_CHARS_MAX = 2048  # a Signature-Input or Signature longer than this is refused
TERMINAL_ID_PATTERN = re.compile(r"^[0-9A-F]{12}$")
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,32}$")  # base64url or hex, 16-32 characters
PUBLIC_KEY_PATTERN = re.compile(r"^[0-9a-fA-F]{64}$")


# -- why a request was refused: each a 401 problem with its own stable code --------------------


class SignatureMissing(SignatureRequired):
    code = "signature_missing"
    title = "The request is not signed"


class SignatureMalformed(SignatureRequired):
    code = "signature_malformed"
    title = "The signature headers cannot be read"


class KeyIdMismatch(SignatureRequired):
    code = "signature_keyid_mismatch"
    title = "The signature's keyid is not the terminal id"


class ComponentsMissing(SignatureRequired):
    code = "signature_components_missing"
    title = "The signature does not cover what it must"


class SignatureStale(SignatureRequired):
    code = "signature_stale"
    title = "The signature was not created now"


class ContentDigestInvalid(SignatureRequired):
    code = "content_digest_invalid"
    title = "The Content-Digest does not match the body"


class KeyUnknown(SignatureRequired):
    code = "signature_key_unknown"
    title = "No terminal has this key id"


class SignatureInvalid(SignatureRequired):
    code = "signature_invalid"
    title = "The signature does not verify"


class NonceReplayed(SignatureRequired):
    code = "signature_nonce_replayed"
    title = "The nonce was already used"


# -- the request as the verifier sees it -----------------------------------------------------


class _FieldLines:
    """Read-only header view in wire order (what the library reads), case-insensitive lookup."""

    def __init__(self, lines: Iterable[tuple[str, str]]) -> None:
        self._lines = tuple(lines)

    def items(self) -> tuple[tuple[str, str], ...]:
        return self._lines

    def __iter__(self) -> Iterator[str]:  # the library iterates names
        return iter(dict.fromkeys(name for name, _ in self._lines))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(n.lower() == name.lower() for n, _ in self._lines)

    def get(self, name: str) -> str | None:
        values = [value for n, value in self._lines if n.lower() == name.lower()]
        return ", ".join(values) if values else None


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """One received request: method, absolute URL as sent (path and query unaltered), field lines
    in wire order, the exact body bytes."""

    method: str
    url: str
    headers: _FieldLines
    body: bytes

    @classmethod
    def of(
        cls, method: str, url: str, header_lines: Iterable[tuple[str, str]], body: bytes
    ) -> SignedRequest:
        return cls(method.upper(), url, _FieldLines(header_lines), body)

    @property
    def has_query(self) -> bool:
        return "?" in self.url


@dataclass(frozen=True, slots=True)
class SignatureInput:
    """The one signature of a request: its label, covered components and parameters."""

    label: str
    components: tuple[str, ...]  # serialized component identifiers, e.g. '"@method"'
    created: int
    nonce: str
    keyid: str
    terminal_id: str  # the Onecard-Terminal-Id header


def required_components(request: SignedRequest) -> tuple[str, ...]:
    """What every terminal signature must cover, in the order our terminals sign them."""
    components = ["@method", "@path"]
    if request.has_query:
        components.append("@query")
    if request.body or request.headers.get("content-digest") is not None:
        components.append("content-digest")
    components.append(COMPONENT_TERMINAL_ID)
    return tuple(components)


def _dictionary(request: SignedRequest, name: str) -> dict:
    value = request.headers.get(name)
    if value is None:
        retired = any(request.headers.get(old) is not None for old in RETIRED_HEADERS)
        hint = " (the X-Onecard-* signing headers are no longer accepted)" if retired else ""
        raise SignatureMissing(
            f"send Signature-Input and Signature (RFC 9421, Ed25519) as docs/terminal-protocol.md "
            f"says: {name} is missing{hint}"
        )
    if len(value) > SIGNATURE_FIELD_CHARS_MAX:
        raise SignatureMalformed(f"{name} is longer than {SIGNATURE_FIELD_CHARS_MAX} characters")
    try:
        parsed = http_sf.parse(value.encode("latin-1"), tltype="dictionary")
    except (ValueError, TypeError, UnicodeEncodeError):
        raise SignatureMalformed(f"{name} is not a Structured Field Dictionary") from None
    if not isinstance(parsed, dict) or len(parsed) != 1:
        raise SignatureMalformed(f"{name} must hold exactly one signature")
    return parsed


def _parameters(params: Mapping[str, object]) -> tuple[int, str, str]:
    missing = [name for name in REQUIRED_PARAMETERS if name not in params]
    if missing:
        raise SignatureMalformed(f"Signature-Input lacks the parameter(s) {', '.join(missing)}")
    created, nonce, keyid, alg = (params[name] for name in REQUIRED_PARAMETERS)
    if type(created) is not int:
        raise SignatureMalformed("created must be an Integer (Unix seconds)")
    if not isinstance(nonce, str) or not NONCE_PATTERN.match(nonce):
        raise SignatureMalformed("nonce must be a String of 16-32 characters [A-Za-z0-9_-]")
    if not isinstance(keyid, str) or alg != ALGORITHM:
        raise SignatureMalformed(f'keyid must be a String and alg must be "{ALGORITHM}"')
    return created, nonce, keyid


def parse_signature_input(request: SignedRequest) -> SignatureInput:
    """The request's one signature, shape-checked; SignatureMissing or SignatureMalformed if not."""
    inputs = _dictionary(request, "Signature-Input")
    signatures = _dictionary(request, "Signature")
    [(label, (covered, params))] = inputs.items()
    if set(signatures) != {label}:
        raise SignatureMalformed("Signature and Signature-Input must use the same label")
    signature_value = signatures[label][0]
    if not isinstance(covered, list) or not isinstance(signature_value, bytes):
        raise SignatureMalformed(
            "Signature-Input must be an Inner List and Signature a Byte Sequence"
        )
    if not all(isinstance(item, str) for item, _ in covered):
        raise SignatureMalformed("covered components must be Strings")
    created, nonce, keyid = _parameters(params)
    terminal_id = request.headers.get(HEADER_TERMINAL_ID)
    if terminal_id is None or not TERMINAL_ID_PATTERN.match(terminal_id):
        raise SignatureMalformed(f"{HEADER_TERMINAL_ID} must be the terminal id, 12 hex digits")
    components = tuple(http_sf.ser((item, item_params)) for item, item_params in covered)
    return SignatureInput(label, components, created, nonce, keyid, terminal_id)


def check_keyid(signed: SignatureInput) -> None:
    if signed.keyid != signed.terminal_id:
        raise KeyIdMismatch(
            f"keyid {signed.keyid!r} is not the {HEADER_TERMINAL_ID} {signed.terminal_id!r}"
        )


def check_covered(signed: SignatureInput, request: SignedRequest) -> None:
    covered = set(signed.components)
    missing = [c for c in required_components(request) if http_sf.ser(c) not in covered]
    if missing:
        raise ComponentsMissing(f"the signature must also cover {', '.join(missing)}")


def check_created(signed: SignatureInput, now_s: int) -> None:
    if abs(now_s - signed.created) > TIMESTAMP_SKEW_S_MAX:
        raise SignatureStale(
            f"created {signed.created} is more than {TIMESTAMP_SKEW_S_MAX} s from the server's "
            f"clock ({now_s}): check the terminal's clock"
        )


def check_content_digest(request: SignedRequest) -> None:
    """RFC 9530: a request with a body sends Content-Digest, and it matches the exact body."""
    value = request.headers.get("content-digest")
    if value is None:
        if request.body:
            raise ContentDigestInvalid("a request with a body must send Content-Digest (sha-256)")
        return
    try:
        ContentDigest.verify(value, request.body)
    except InvalidSignature as error:
        raise ContentDigestInvalid(f"Content-Digest: {error}") from None


class _Verifier(HTTPMessageVerifier):
    max_clock_skew = timedelta(seconds=TIMESTAMP_SKEW_S_MAX)


def verify_signature(request: SignedRequest, signed: SignatureInput, public_key_hex: str) -> None:
    """Rebuild the RFC 9421 signature base and check the Ed25519 signature; SignatureInvalid."""
    if not PUBLIC_KEY_PATTERN.match(public_key_hex):
        raise SignatureInvalid("the terminal's registered key is not an Ed25519 public key")
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
    verifier = _Verifier(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={signed.keyid: key}, private_keys={}),
    )
    try:
        verifier.verify(
            request,
            max_age=timedelta(0),  # with the skew: created no older than the window
            require_components=required_components(request),
            body=request.body,
        )
    except (InvalidSignature, HTTPMessageSignaturesException) as error:
        reason = str(error) or "Ed25519 check of the signature base failed"
        raise SignatureInvalid(
            f"the signature does not verify for terminal {signed.keyid}: {reason}"
        ) from None
