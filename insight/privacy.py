"""The privacy rules of a release, as plain functions: budget split, noise calibration (OpenDP),
the k-rider threshold and the per-release pseudonymous key of a card.

Privacy unit: one rider's travel on one business day. Each table counts every tap (or trip) in
exactly one cell and at most `taps_per_rider_day_max` taps of a rider-day are counted, so adding
or removing a whole rider-day changes a table by at most that bound in L1 norm: that bound is the
sensitivity each table's noise is calibrated to. Never does I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import opendp.prelude as dp

from insight.errors import invariant

dp.enable_features("contrib")

HMAC_BLOCK_BYTES = 64  # SHA-256's block size
SALT_BYTES = 32
# The relative slack allowed between the budget asked for and what OpenDP's map reports (float).
EPSILON_SLACK = 1e-9


@dataclass(frozen=True, slots=True)
class NoisePlan:
    """How one table is released: its share of the budget and the Laplace scale that spends it."""

    epsilon: float
    sensitivity: int
    scale: float


# Adds a plan's noise to counts, one draw per count in order: add_noise, or a seeded stand-in in
# tests that assert on a release's published numbers.
Noise = Callable[[Sequence[int], NoisePlan], list[int]]


def split_budget(epsilon: float, tables: int) -> float:
    """Equal shares of a release's epsilon for `tables` tables (sequential composition)."""
    invariant(epsilon > 0 and tables > 0, "a budget and at least one table")
    return epsilon / tables


def plan_noise(epsilon: float, sensitivity: int) -> NoisePlan:
    """The (discrete) Laplace scale that makes a table of L1 sensitivity `sensitivity`
    epsilon-DP: scale = sensitivity / epsilon, checked against OpenDP's own privacy map."""
    invariant(epsilon > 0 and sensitivity > 0, "a positive budget and sensitivity")
    scale = sensitivity / epsilon
    spent = _measurement(scale).map(sensitivity)
    invariant(spent <= epsilon * (1 + EPSILON_SLACK), f"noise spends {spent} > {epsilon}")
    return NoisePlan(epsilon=epsilon, sensitivity=sensitivity, scale=scale)


def _measurement(scale: float) -> dp.Measurement:
    space = dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64")
    return dp.m.make_laplace(*space, scale=scale)


def add_noise(counts: Sequence[int], plan: NoisePlan) -> list[int]:
    """`counts` with discrete Laplace noise of the plan's scale (OpenDP's sampler: it draws from
    the operating system's randomness and cannot be seeded, as a release's noise must not be)."""
    if not counts:
        return []
    return list(_measurement(plan.scale)(list(counts)))


def publishable(riders: int, noisy_count: int, k: int) -> bool:
    """A cell is published only if at least k distinct riders are in it and its noisy count is
    not below k (so no published number is small enough to point at a handful of people)."""
    return riders >= k and noisy_count >= k


def tail_bound(plan: NoisePlan, probability: float) -> float:
    """|noise| exceeds this with at most `probability` (Laplace tail: P(|X| > t) = e^(-t/b))."""
    invariant(0 < probability < 1, "a probability")
    return plan.scale * -math.log(probability)


def hmac_pads(salt: bytes) -> tuple[bytes, bytes]:
    """The inner and outer padded keys of HMAC-SHA256 (RFC 2104), so SQL can compute
    sha256(opad || sha256(ipad || message)) without the key ever being stored."""
    invariant(len(salt) <= HMAC_BLOCK_BYTES, "salt longer than a SHA-256 block")
    key = salt.ljust(HMAC_BLOCK_BYTES, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def pseudonym(salt: bytes, card_no: str) -> bytes:
    """The release's pseudonymous key of a card: HMAC-SHA256(salt, card number)."""
    return hmac.new(salt, card_no.encode(), hashlib.sha256).digest()
