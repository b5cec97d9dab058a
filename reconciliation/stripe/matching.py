"""Matcher 4: Stripe's charges (from its balance transactions) against the payments clearing
posted for them. Pure.

Keyed by PaymentIntent: onecard names every top-up and phone bill payment by the PaymentIntent
Stripe charged it through, and a balance transaction names its charge, which names the intent.
- a charge whose intent clearing never posted (its webhook never came): `stripe_payment_unposted`;
- a payment clearing posted that Stripe has no charge for: `stripe_payment_unknown`;
- both, amounts differ: `stripe_amount_mismatch`; fees differ (where clearing booked one, a
  top-up; a bill payment books none and its fee is not compared): `stripe_fee_mismatch`.
An intent charged twice counts once per charge (the second is unposted). Stripe's payouts go
through matcher 5 as payouts into the escrow account (`stripe_payouts` here makes them).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from reconciliation.bank.matching import ExpectedPayout, PayoutSource

PAYOUT_KEY_PREFIX = "stripe:"


class StripeBreakKind(enum.StrEnum):
    STRIPE_PAYMENT_UNPOSTED = "stripe_payment_unposted"  # Stripe charged, clearing posted nothing
    STRIPE_PAYMENT_UNKNOWN = "stripe_payment_unknown"  # clearing posted, Stripe has no charge
    STRIPE_AMOUNT_MISMATCH = "stripe_amount_mismatch"  # both, amounts differ
    STRIPE_FEE_MISMATCH = "stripe_fee_mismatch"  # Stripe's fee != the fee clearing booked
    STRIPE_PAYOUT_UNMATCHED = "stripe_payout_unmatched"  # a payout not (in full) on the statement


@dataclass(frozen=True, slots=True)
class StripeCharge:
    """A charge's balance transaction, as Stripe lists it."""

    txn_id: str
    charge_id: str
    payment_intent: str | None
    amount_fen: int
    fee_fen: int
    created: datetime


@dataclass(frozen=True, slots=True)
class PostedPayment:
    """A payment clearing posted for a PaymentIntent: a top-up or a bill paid on the phone."""

    payment_intent: str
    what: str  # "topup" or "bill"
    ref: str  # the top-up's or bill payment's id
    amount_fen: int
    fee_fen: int | None  # the fee clearing booked; None: it books none (not compared)
    at: datetime | None = None  # when it was asked for (the run's window is on this)


@dataclass(frozen=True, slots=True)
class StripePayout:
    id: str
    amount_fen: int
    arrival_date: date
    status: str


@dataclass(frozen=True, slots=True)
class StripeFinding:
    kind: StripeBreakKind
    key: str
    amount_fen: int
    counterpart: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StripeMatch:
    matched: int
    total: int
    findings: tuple[StripeFinding, ...]


def match_charges(charges: Iterable[StripeCharge], posted: Iterable[PostedPayment]) -> StripeMatch:
    """Each charge against the payment posted for its intent; what is left on either side."""
    by_intent = {p.payment_intent: p for p in posted}
    seen: set[str] = set()
    findings: list[StripeFinding] = []
    matched = total = 0
    for charge in sorted(charges, key=lambda c: (c.created, c.txn_id)):
        total += 1
        intent = charge.payment_intent or charge.charge_id
        payment = by_intent.get(intent) if intent not in seen else None
        if payment is None:
            findings.append(_unposted(charge, intent))
            continue
        seen.add(intent)
        found = _compare(charge, payment)
        findings.extend(found)
        matched += not found
    for intent, payment in sorted(by_intent.items()):
        if intent not in seen:
            total += 1
            findings.append(
                StripeFinding(
                    StripeBreakKind.STRIPE_PAYMENT_UNKNOWN,
                    f"payment:{intent}",
                    payment.amount_fen,
                    "stripe",
                    {
                        "payment_intent": intent,
                        payment.what: payment.ref,
                        "why": f"clearing posted {payment.what} {payment.ref} "
                        f"({payment.amount_fen} fen) but Stripe lists no charge for {intent}",
                    },
                )
            )
    return StripeMatch(matched, total, tuple(findings))


def _unposted(charge: StripeCharge, intent: str) -> StripeFinding:
    return StripeFinding(
        StripeBreakKind.STRIPE_PAYMENT_UNPOSTED,
        f"charge:{charge.charge_id}",
        charge.amount_fen,
        "stripe",
        {
            "payment_intent": intent,
            "charge": charge.charge_id,
            "balance_transaction": charge.txn_id,
            "fee_fen": charge.fee_fen,
            "why": f"Stripe charged {charge.amount_fen} fen ({intent}) and clearing posted "
            "nothing: its webhook never came (replay the event from Stripe's dashboard)",
        },
    )


def _compare(charge: StripeCharge, payment: PostedPayment) -> list[StripeFinding]:
    out: list[StripeFinding] = []
    ids = {"payment_intent": payment.payment_intent, payment.what: payment.ref}
    if charge.amount_fen != payment.amount_fen:
        out.append(
            StripeFinding(
                StripeBreakKind.STRIPE_AMOUNT_MISMATCH,
                f"charge:{charge.charge_id}",
                abs(charge.amount_fen - payment.amount_fen),
                "stripe",
                {
                    **ids,
                    "stripe_fen": charge.amount_fen,
                    "posted_fen": payment.amount_fen,
                    "why": f"Stripe charged {charge.amount_fen} fen, clearing posted "
                    f"{payment.amount_fen} fen",
                },
            )
        )
    if payment.fee_fen is not None and charge.fee_fen != payment.fee_fen:
        out.append(
            StripeFinding(
                StripeBreakKind.STRIPE_FEE_MISMATCH,
                f"fee:{charge.charge_id}",
                abs(charge.fee_fen - payment.fee_fen),
                "stripe",
                {
                    **ids,
                    "stripe_fee_fen": charge.fee_fen,
                    "booked_fee_fen": payment.fee_fen,
                    "why": f"Stripe took a fee of {charge.fee_fen} fen, clearing booked "
                    f"{payment.fee_fen} fen to expense:psp-fees",
                },
            )
        )
    return out


def stripe_payouts(payouts: Iterable[StripePayout]) -> list[ExpectedPayout]:
    """Stripe's payouts as matcher 5 expects them: credits into the escrow account on their
    arrival date, named by the payout's id (Stripe's statement descriptor carries it)."""
    return [
        ExpectedPayout(
            key=PAYOUT_KEY_PREFIX + p.id,
            source=PayoutSource.STRIPE,
            counterpart="stripe",
            signed_fen=p.amount_fen,
            expected_date=p.arrival_date,
            end_to_end_id=p.id,
        )
        for p in payouts
        if p.status in {"paid", "pending", "in_transit"} and p.amount_fen > 0
    ]
