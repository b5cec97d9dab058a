"""Terminal requests are RFC 9421 HTTP Message Signatures, and only those (docs/terminal-protocol.md).

A signer and a verifier are written here by hand from RFC 9421 §2.5 with `cryptography` only:
the service accepts what the hand-built signer sends, our terminals' signer (library based)
produces what the hand-built verifier and the library's own verifier accept, and each kind of
tampering is refused with 401, its own problem code, and nothing stored.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver, algorithms
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from clearing.auth import signing
from clearing.auth.signing import (
    TIMESTAMP_SKEW_S_MAX,
    SignatureStale,
    SignedRequest,
    check_created,
    parse_signature_input,
)
from terminals.signing import TerminalCredential, signed_headers
from tests.clearing.apiharness import (
    World,
    batch_body,
    public_hex,
    random_card_no,
    random_terminal_id,
    tap_record,
    world,
)
from tests.clearing.test_ingest_api import stored

BASE = "http://clearing.test"
PROTOCOL_PAGE = Path(__file__).resolve().parents[2] / "docs" / "terminal-protocol.md"

# -- RFC 9421 by hand -----------------------------------------------------------------------


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def content_digest(body: bytes) -> str:
    """RFC 9530: sha-256 as a Structured Field Byte Sequence."""
    return f"sha-256=:{b64(hashlib.sha256(body).digest())}:"


def component_values(method: str, url: str, headers: dict[str, str]) -> dict[str, str]:
    """RFC 9421 §2.2 derived components and §2.1 fields (names lower-cased)."""
    target = urlsplit(url)
    values = {"@method": method, "@path": target.path or "/", "@query": f"?{target.query}"}
    values.update({name.lower(): value.strip() for name, value in headers.items()})
    return values


def signature_base(values: dict[str, str], covered: list[str], params: str) -> str:
    """RFC 9421 §2.5: one line per covered component, then "@signature-params", no final LF."""
    lines = [f'"{name}": {values[name]}' for name in covered]
    return "\n".join([*lines, f'"@signature-params": {params}'])


@dataclass
class HandSigner:
    """A vendor's terminal that knows RFC 9421 and the protocol page, not our code."""

    terminal_id: str
    key: Ed25519PrivateKey

    def headers(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        created: int | None = None,
        nonce: str | None = None,
        covered: list[str] | None = None,
        keyid: str | None = None,
        alg: str = "ed25519",
    ) -> dict[str, str]:
        headers = {"Onecard-Terminal-Id": self.terminal_id}
        if body:
            headers["Content-Digest"] = content_digest(body)
        if covered is None:
            covered = ["@method", "@path"]
            covered += ["@query"] if "?" in path else []
            covered += ["content-digest"] if body else []
            covered += ["onecard-terminal-id"]
        created = int(time.time()) if created is None else created
        nonce = nonce or secrets.token_hex(16)
        inner = " ".join(f'"{name}"' for name in covered)
        params = (
            f'({inner});created={created};nonce="{nonce}";'
            f'keyid="{keyid or self.terminal_id}";alg="{alg}"'
        )
        base = signature_base(component_values(method, BASE + path, headers), covered, params)
        headers["Signature-Input"] = f"sig1={params}"
        headers["Signature"] = f"sig1=:{b64(self.key.sign(base.encode('ascii')))}:"
        return headers


SIGNATURE_INPUT = re.compile(r"^(?P<label>[a-z][a-z0-9_-]*)=\((?P<inner>[^)]*)\)(?P<params>.*)$")


def hand_verify(
    method: str, url: str, headers: dict[str, str], body: bytes, public: Ed25519PublicKey
) -> str:
    """Check a request's signature and digest as a vendor's server would; the base it checked."""
    match = SIGNATURE_INPUT.match(headers["Signature-Input"])
    if match is None:
        raise ValueError(headers["Signature-Input"])
    covered = re.findall(r'"([^"]+)"', match["inner"])
    params = match.group(0)[len(match["label"]) + 1 :]
    label, _, signature = headers["Signature"].partition("=")
    if label != match["label"]:
        raise ValueError("labels differ")
    if body and headers.get("Content-Digest") != content_digest(body):
        raise InvalidSignature("Content-Digest")
    base = signature_base(component_values(method, url, headers), covered, params)
    public.verify(base64.b64decode(signature.strip(":")), base.encode("ascii"))
    return base


# -- the service accepts the hand-built signature ---------------------------------------------


async def test_a_hand_built_rfc9421_signature_is_accepted_for_uploads_and_lists(
    pg_url, tmp_path
) -> None:
    async with world(pg_url, tmp_path) as w:
        vendor = HandSigner(w.terminal.terminal_id, w.terminal.key)
        path = f"/v1/terminals/{vendor.terminal_id}/batches"
        body = batch_body("vendor-1", [tap_record(random_card_no(), 1, 1)])
        headers = {**vendor.headers("POST", path, body), "Content-Type": "application/json"}
        uploaded = await w.client.post(path, content=body, headers=headers)
        assert uploaded.status_code == 200, uploaded.text
        assert await stored(w, vendor.terminal_id) == (1, 1, 1)
        list_path = f"/v1/terminals/{vendor.terminal_id}/deny-list?since=0"
        listed = await w.client.get(list_path, headers=vendor.headers("GET", list_path, b""))
        assert listed.status_code == 200, listed.text
        assert listed.json()["list"] == "deny"


# -- every tampering is refused, says why, and stores nothing ---------------------------------


@dataclass
class Sent:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]


def _honest(w: World, vendor: HandSigner) -> Sent:
    path = f"/v1/terminals/{vendor.terminal_id}/batches"
    body = batch_body(f"b-{secrets.token_hex(3)}", [tap_record(random_card_no(), 7, 7)])
    return Sent("POST", path, body, vendor.headers("POST", path, body))


def _tamper(case: str, sent: Sent, vendor: HandSigner, other_id: str) -> Sent:
    now = int(time.time())
    signed = vendor.headers
    body, path = sent.body, sent.path
    tampered = body.replace(b'"amount_fen": 200', b'"amount_fen": 2')
    if case == "body":
        return Sent("POST", path, tampered, sent.headers)
    if case == "digest":  # the digest header alone, changed to another body's
        return Sent("POST", path, body, {**sent.headers, "Content-Digest": content_digest(b"x")})
    if case == "body_and_digest":  # consistent, but not what was signed
        headers = {**sent.headers, "Content-Digest": content_digest(tampered)}
        return Sent("POST", path, tampered, headers)
    if case == "path":
        split = path.replace("/batches", "/clinic/splits")
        return Sent("POST", path, body, signed("POST", split, body))
    if case == "method":
        return Sent("POST", path, body, signed("PUT", path, body))
    if case == "terminal_id":
        return Sent("POST", path, body, {**sent.headers, "Onecard-Terminal-Id": other_id})
    if case == "keyid":
        return Sent("POST", path, body, signed("POST", path, body, keyid=other_id))
    if case in ("stale", "future"):
        skew = TIMESTAMP_SKEW_S_MAX + 60  # clear of the edge (seconds pass while it runs)
        return Sent(
            "POST",
            path,
            body,
            signed("POST", path, body, created=now + (skew if case == "future" else -skew)),
        )
    if case.startswith("without:"):
        covered = ["@method", "@path", "content-digest", "onecard-terminal-id"]
        covered.remove(case.split(":", 1)[1])
        return Sent("POST", path, body, signed("POST", path, body, covered=covered))
    if case == "alg":
        return Sent("POST", path, body, signed("POST", path, body, alg="rsa-pss-sha512"))
    if case == "no_signature_input":
        headers = {k: v for k, v in sent.headers.items() if k != "Signature-Input"}
        return Sent("POST", path, body, headers)
    raise AssertionError(case)


REFUSALS = {
    "body": "content_digest_invalid",
    "digest": "content_digest_invalid",
    "body_and_digest": "signature_invalid",
    "path": "signature_invalid",
    "method": "signature_invalid",
    "terminal_id": "signature_keyid_mismatch",
    "keyid": "signature_keyid_mismatch",
    "stale": "signature_stale",
    "future": "signature_stale",
    "without:@method": "signature_components_missing",
    "without:@path": "signature_components_missing",
    "without:content-digest": "signature_components_missing",
    "without:onecard-terminal-id": "signature_components_missing",
    "alg": "signature_malformed",
    "no_signature_input": "signature_missing",
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_tampered_request_is_refused_with_its_reason_and_stores_nothing(
    pg_url, tmp_path, case
) -> None:
    async with world(pg_url, tmp_path) as w:
        other = await w.add_terminal()
        vendor = HandSigner(w.terminal.terminal_id, w.terminal.key)
        sent = _tamper(case, _honest(w, vendor), vendor, other.terminal_id)
        response = await w.client.request(
            sent.method, sent.path, content=sent.body, headers=sent.headers
        )
        assert response.status_code == 401, response.text
        problem = response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
        assert problem["code"] == REFUSALS[case], problem
        assert problem["status"] == 401
        assert not problem["detail"].rstrip().endswith(":"), problem  # says why, in words
        assert await stored(w, vendor.terminal_id) == (0, 0, 0)
        assert await stored(w, other.terminal_id) == (0, 0, 0)


async def test_a_reused_nonce_is_refused_and_the_batch_stored_once(pg_url, tmp_path) -> None:
    async with world(pg_url, tmp_path) as w:
        vendor = HandSigner(w.terminal.terminal_id, w.terminal.key)
        sent = _honest(w, vendor)
        first = await w.client.post(sent.path, content=sent.body, headers=sent.headers)
        assert first.status_code == 200, first.text
        # the same nonce again, even on a freshly signed request with another body
        nonce = re.search(r'nonce="([^"]+)"', sent.headers["Signature-Input"])[1]
        body = batch_body("b-replay", [tap_record(random_card_no(), 8, 8)])
        again = vendor.headers("POST", sent.path, body, nonce=nonce)
        replayed = await w.client.post(sent.path, content=body, headers=again)
        assert replayed.status_code == 401
        assert replayed.json()["code"] == "signature_nonce_replayed"
        assert await stored(w, vendor.terminal_id) == (1, 1, 1)


async def test_a_list_fetch_must_cover_its_query(pg_url, tmp_path) -> None:
    async with world(pg_url, tmp_path) as w:
        vendor = HandSigner(w.terminal.terminal_id, w.terminal.key)
        path = f"/v1/terminals/{vendor.terminal_id}/deny-list?since=0"
        headers = vendor.headers(
            "GET", path, b"", covered=["@method", "@path", "onecard-terminal-id"]
        )
        response = await w.client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == "signature_components_missing"
        assert "@query" in response.json()["detail"]


async def test_an_unknown_key_is_refused(pg_url, tmp_path) -> None:
    async with world(pg_url, tmp_path) as w:
        stranger = HandSigner(random_terminal_id(), Ed25519PrivateKey.generate())
        path = f"/v1/terminals/{stranger.terminal_id}/batches"
        body = batch_body("b-1", [tap_record(random_card_no(), 1, 1)])
        response = await w.client.post(
            path, content=body, headers=stranger.headers("POST", path, body)
        )
        assert response.status_code == 401
        assert response.json()["code"] == "signature_key_unknown"


async def test_the_retired_x_onecard_headers_are_refused(pg_url, tmp_path) -> None:
    async with world(pg_url, tmp_path) as w:
        path = f"/v1/terminals/{w.terminal.terminal_id}/batches"
        body = batch_body("b-old", [tap_record(random_card_no(), 1, 1)])
        old = {
            "X-Onecard-Terminal": w.terminal.terminal_id,
            "X-Onecard-Timestamp": str(int(time.time())),
            "X-Onecard-Nonce": secrets.token_hex(16),
            "X-Onecard-Signature": w.terminal.key.sign(body).hex(),
        }
        response = await w.client.post(path, content=body, headers=old)
        assert response.status_code == 401
        assert response.json()["code"] == "signature_missing"
        assert "no longer accepted" in response.json()["detail"]
        assert await stored(w, w.terminal.terminal_id) == (0, 0, 0)


# -- our signer against two verifiers that are not ours ---------------------------------------


class _LibraryVerifier(HTTPMessageVerifier):
    max_clock_skew = timedelta(seconds=TIMESTAMP_SKEW_S_MAX)


@dataclass(frozen=True)
class _Message:
    method: str
    url: str
    headers: dict[str, str]


paths = st.lists(
    st.sampled_from(["v1", "terminals", "000001000050", "batches", "deny-list"]),
    min_size=1,
    max_size=4,
)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["GET", "POST"]),
    paths,
    st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
    st.binary(max_size=300),
)
def test_our_signer_verifies_with_the_library_and_by_hand(method, segments, since, body) -> None:
    key = Ed25519PrivateKey.generate()
    credential = TerminalCredential("000001000050", key)
    url = f"{BASE}/{'/'.join(segments)}" + ("" if since is None else f"?since={since}")
    headers = signed_headers(credential, method, url, body, int(time.time()))
    base = hand_verify(method, url, headers, body, key.public_key())
    assert base.startswith(f'"@method": {method}\n"@path": /')
    verifier = _LibraryVerifier(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(
            public_keys={"000001000050": key.public_key()}, private_keys={}
        ),
    )
    required = ["@method", "@path", "onecard-terminal-id"] + (
        ["@query"] if since is not None else []
    )
    [result] = verifier.verify(
        _Message(method, url, headers), require_components=required, body=body
    )
    assert result.parameters["keyid"] == "000001000050" and result.parameters["alg"] == "ed25519"
    with pytest.raises(InvalidSignature):
        hand_verify(method, url, headers, body + b"!", key.public_key())
    with pytest.raises(InvalidSignature):
        hand_verify("PUT", url, headers, body, key.public_key())


def test_created_window_both_sides() -> None:
    key = Ed25519PrivateKey.generate()
    credential = TerminalCredential("000001000050", key)
    url = f"{BASE}/v1/terminals/000001000050/batches"
    headers = signed_headers(credential, "POST", url, b"{}", 1_000_000)
    signed = parse_signature_input(SignedRequest.of("POST", url, headers.items(), b"{}"))
    check_created(signed, 1_000_000 + TIMESTAMP_SKEW_S_MAX)
    check_created(signed, 1_000_000 - TIMESTAMP_SKEW_S_MAX)
    with pytest.raises(SignatureStale):
        check_created(signed, 1_000_000 + TIMESTAMP_SKEW_S_MAX + 1)
    with pytest.raises(SignatureStale):
        check_created(signed, 1_000_000 - TIMESTAMP_SKEW_S_MAX - 1)


# -- the worked example of the protocol page is real bytes ------------------------------------

EXAMPLE_SEED = "64350095df7e8dfdbe2b91fdaf4ffc429754a046c976c14e9dc5dd1d68628e61"
EXAMPLE_TERMINAL = "000001000050"
EXAMPLE_CREATED = 1764979200
EXAMPLE_BODY = b'{"batch_id":"000001000050-00000001","records":[]}'


def _example_headers(method: str, path: str, body: bytes, nonce: str) -> dict[str, str]:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(EXAMPLE_SEED))
    credential = TerminalCredential(EXAMPLE_TERMINAL, key)
    url = f"https://clearing.example{path}"
    return signed_headers(credential, method, url, body, EXAMPLE_CREATED, nonce)


@pytest.mark.parametrize(
    ("method", "path", "body", "nonce"),
    [
        ("POST", f"/v1/terminals/{EXAMPLE_TERMINAL}/batches", EXAMPLE_BODY, "cmFuZG9tLW5vbmNlLTAx"),
        (
            "GET",
            f"/v1/terminals/{EXAMPLE_TERMINAL}/deny-list?since=12",
            b"",
            "bm9uY2UtZm9yLWEtbGlzdA",
        ),
    ],
)
def test_the_worked_examples_of_the_protocol_page_are_real(method, path, body, nonce) -> None:
    page = PROTOCOL_PAGE.read_text(encoding="utf-8")
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(EXAMPLE_SEED))
    assert EXAMPLE_SEED in page and public_hex(key) in page
    headers = _example_headers(method, path, body, nonce)
    url = f"https://clearing.example{path}"
    base = hand_verify(method, url, headers, body, key.public_key())
    assert base in page, base
    for name, value in headers.items():
        assert f"{name}: {value}" in page, (name, value)


field_text = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=120),
    st.sampled_from(
        [
            'sig1=("@method");created=1;nonce="aaaaaaaaaaaaaaaa";keyid="000001000050";alg="ed25519"',
            'sig1=("@method" "@path");created=1.5;nonce=x;keyid=1;alg=ed25519',
            "sig1=:AAAA:, sig2=:AAAA:",
            "sha-256=:AAAA:",
            "sha-256=:LtEGTUXJgD2PjUD74vE8o8+dW0u45wiMFAoXmlcx2n4=:, md5=:AA==:",
            "000001000050",
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["Signature-Input", "Signature", "Content-Digest", "Onecard-Terminal-Id"]),
        field_text,
    ),
    st.binary(max_size=40),
)
def test_any_signature_headers_are_a_401_reason_never_a_crash(fields, body) -> None:
    """Whatever a caller sends in the four fields, the answer is one of the 401 reasons."""
    key = Ed25519PrivateKey.generate()
    request = SignedRequest.of(
        "POST", f"{BASE}/v1/terminals/000001000050/batches", fields.items(), body
    )
    try:
        signed = parse_signature_input(request)
        signing.check_keyid(signed)
        signing.check_covered(signed, request)
        signing.check_content_digest(request)
        signing.verify_signature(request, signed, public_hex(key))
    except signing.SignatureRequired as refused:
        assert refused.status == 401 and refused.code != "unauthenticated" and refused.detail
    else:
        raise AssertionError(f"accepted without a valid signature: {fields}")


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["Signature-Input", "Signature", "Content-Digest", "Onecard-Terminal-Id"]),
    field_text,
)
def test_one_altered_field_of_a_genuine_signature_is_refused(name, value) -> None:
    key = Ed25519PrivateKey.generate()
    url = f"{BASE}/v1/terminals/000001000050/batches"
    credential = TerminalCredential("000001000050", key)
    headers = signed_headers(credential, "POST", url, b'{"a":1}', int(time.time()))
    assume(value.strip(" \t") != headers[name])  # an alteration, not the same field again
    request = SignedRequest.of("POST", url, {**headers, name: value}.items(), b'{"a":1}')
    with pytest.raises(signing.SignatureRequired) as refused:
        signed = parse_signature_input(request)
        signing.check_keyid(signed)
        signing.check_covered(signed, request)
        signing.check_content_digest(request)
        signing.verify_signature(request, signed, public_hex(key))
    assert refused.value.status == 401 and refused.value.code != "unauthenticated"
