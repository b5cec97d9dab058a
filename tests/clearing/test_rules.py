"""Pure rules of the service, by the thousand: sequence gaps, list deltas, list signatures.

(Request signatures: tests/clearing/test_http_signatures.py.)
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing.ingest.gaps import Gap, update_gaps
from clearing.lists.deltas import apply_delta, net_delta
from clearing.lists.models import ListOp
from clearing.lists.signing import sign_body, verify_body
from tests.clearing.apiharness import public_hex

seq_batches = st.lists(
    st.lists(st.integers(min_value=1, max_value=300), min_size=0, max_size=30), max_size=12
)


@settings(max_examples=300, deadline=None)
@given(seq_batches)
def test_gaps_are_exactly_the_missing_serials_between_lowest_and_highest(batches) -> None:
    gaps: list[Gap] = []
    seen_range = None
    seen: set[int] = set()
    for batch in batches:
        gaps, seen_range = update_gaps(gaps, seen_range, batch)
        seen.update(batch)
        if not seen:
            assert gaps == [] and seen_range is None
            continue
        assert seen_range == (min(seen), max(seen))
        missing = set(range(min(seen), max(seen) + 1)) - seen
        covered = {seq for gap in gaps for seq in range(gap.from_seq, gap.to_seq + 1)}
        assert covered == missing
        # gaps are maximal, sorted and disjoint
        for left, right in zip(gaps, gaps[1:], strict=False):
            assert left.to_seq + 1 < right.from_seq


def test_gap_example_out_of_order() -> None:
    gaps, seen = update_gaps([], None, [7, 8, 9])
    assert gaps == [] and seen == (7, 9)
    gaps, seen = update_gaps(gaps, seen, [1, 2])
    assert gaps == [Gap(3, 6)] and seen == (1, 9)
    gaps, seen = update_gaps(gaps, seen, [4])
    assert gaps == [Gap(3, 3), Gap(5, 6)]


keys = st.sampled_from([f"310000000000000{i}" for i in range(8)])


@st.composite
def valid_histories(draw):
    """A list history where every change changes something (as the service writes it)."""
    present: set[str] = set()
    history = []
    for key in draw(st.lists(keys, max_size=40)):
        op = ListOp.REMOVE if key in present else ListOp.ADD
        history.append((key, op))
        (present.discard if op is ListOp.REMOVE else present.add)(key)
    return history


@settings(max_examples=300, deadline=None)
@given(valid_histories(), st.data())
def test_delta_applied_to_the_list_at_since_gives_the_list_now(history, data) -> None:
    since = data.draw(st.integers(min_value=0, max_value=len(history)))
    at_since = apply_delta(frozenset(), net_delta(history[:since]))
    now = apply_delta(frozenset(), net_delta(history))
    delta = net_delta(history[since:])
    assert apply_delta(at_since, delta) == now
    assert not set(delta.added) & at_since  # never re-sends what the terminal holds
    assert set(delta.removed) <= at_since


def test_list_signature_covers_every_field() -> None:
    key = Ed25519PrivateKey.generate()
    body = {
        "list": "deny",
        "since": 1,
        "version": 2,
        "added": ["3100000000000001"],
        "removed": [],
        "full": False,
        "signed_at": "2026-11-29T00:00:00Z",
    }
    body["signature"] = sign_body(key, body)
    public = public_hex(key)
    assert verify_body(public, body)
    for field, value in [("version", 3), ("added", []), ("full", True), ("since", 0)]:
        assert not verify_body(public, {**body, field: value}), field
