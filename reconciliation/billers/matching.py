"""Matcher 6: the bill payments onecard made against the lines of the billers' confirmation
files. Pure.

A payment is confirmed by a line of its biller naming its payment id with the same amount.
- a payment no file lists once `grace_days` have passed since its day: `biller_unconfirmed`;
- a line naming no payment of ours, or naming one for another amount or of another biller:
  `biller_confirmation_unexplained`.
A payment listed twice (in two files, or twice in one) is confirmed once: the repeat is the
biller's echo and no break. Payments of days still in their grace are neither matched nor broken.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any


class BillerBreakKind(enum.StrEnum):
    BILLER_UNCONFIRMED = "biller_unconfirmed"
    BILLER_CONFIRMATION_UNEXPLAINED = "biller_confirmation_unexplained"


@dataclass(frozen=True, slots=True)
class BillPaid:
    payment_id: str
    biller: str
    amount_fen: int
    bill_id: str
    day: date  # the business day it was paid


@dataclass(frozen=True, slots=True)
class ConfirmationLine:
    biller: str
    file_day: date
    payment_id: str
    ack_id: str
    amount_fen: int
    bill_id: str


@dataclass(frozen=True, slots=True)
class BillerFinding:
    kind: BillerBreakKind
    key: str
    amount_fen: int
    counterpart: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BillerMatch:
    matched: int
    total: int
    findings: tuple[BillerFinding, ...]


def match_billers(
    paid: Iterable[BillPaid],
    lines: Iterable[ConfirmationLine],
    *,
    as_of: date,
    grace_days: int = 0,
) -> BillerMatch:
    payments = {p.payment_id: p for p in paid}
    confirmed: set[str] = set()
    findings: list[BillerFinding] = []
    matched = total = 0
    for line in sorted(lines, key=lambda ln: (ln.file_day, ln.biller, ln.payment_id, ln.ack_id)):
        payment = payments.get(line.payment_id)
        if payment is not None and line.payment_id in confirmed and _same(payment, line):
            continue  # the biller listed it again
        total += 1
        if payment is not None and _same(payment, line):
            confirmed.add(line.payment_id)
            matched += 1
            continue
        findings.append(_unexplained(line, payment))
    for payment in sorted(payments.values(), key=lambda p: (p.day, p.payment_id)):
        if payment.payment_id in confirmed or as_of - payment.day < timedelta(days=grace_days):
            continue
        total += 1
        findings.append(
            BillerFinding(
                BillerBreakKind.BILLER_UNCONFIRMED,
                f"payment:{payment.payment_id}",
                payment.amount_fen,
                payment.biller,
                {
                    "payment_id": payment.payment_id,
                    "bill_id": payment.bill_id,
                    "paid_on": payment.day.isoformat(),
                    "why": f"{payment.biller} lists no confirmation of payment "
                    f"{payment.payment_id} ({payment.amount_fen} fen, bill {payment.bill_id}) "
                    "in its files: the resident's bill may still show unpaid there",
                },
            )
        )
    return BillerMatch(matched, total, tuple(findings))


def _same(payment: BillPaid, line: ConfirmationLine) -> bool:
    return payment.biller == line.biller and payment.amount_fen == line.amount_fen


def _unexplained(line: ConfirmationLine, payment: BillPaid | None) -> BillerFinding:
    if payment is None:
        why = f"{line.biller}'s file of {line.file_day} confirms {line.payment_id}, a payment "
        why += "onecard never made"
    else:
        why = f"{line.biller}'s file of {line.file_day} confirms {line.payment_id} for "
        why += f"{line.amount_fen} fen; onecard paid {payment.amount_fen} fen to {payment.biller}"
    return BillerFinding(
        BillerBreakKind.BILLER_CONFIRMATION_UNEXPLAINED,
        f"confirmation:{line.biller}:{line.payment_id}:{line.ack_id}"[:200],
        line.amount_fen,
        line.biller,
        {
            "payment_id": line.payment_id,
            "ack_id": line.ack_id,
            "bill_id": line.bill_id,
            "file_day": line.file_day.isoformat(),
            "why": why,
        },
    )
