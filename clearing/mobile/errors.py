"""Business failures of the mobile channel: each a stable code, a status and what to do."""

from __future__ import annotations

from clearing.errors import ClearingError, Conflict, InvalidRequest, Unauthenticated, Unavailable


class AmountOverCap(InvalidRequest):
    code = "topup_over_cap"
    title = "The top-up is larger than one top-up may be"


class BalanceCapExceeded(InvalidRequest):
    code = "card_balance_cap"
    title = "The card would hold more than a card may hold"


class CardNotUsable(Conflict):
    code = "card_not_usable"
    title = "The card cannot take a top-up"


class TopupInProgress(Conflict):
    code = "topup_in_progress"
    title = "This top-up is being created right now"


class RequestIdReused(Conflict):
    code = "request_id_reused"
    title = "This request id was used for another top-up"


class PaymentDeclined(ClearingError):
    code = "payment_declined"
    status = 402
    title = "The payment was declined"


class RefundAfterDelivery(Conflict):
    code = "refund_after_delivery"
    title = "The money is already on the card"


class NotRefundable(Conflict):
    code = "not_refundable"
    title = "The top-up cannot be refunded now"


class StripeUnavailable(Unavailable):
    code = "stripe_unavailable"
    title = "Stripe cannot be reached or is not configured"


class BadSignature(ClearingError):
    code = "bad_signature"
    status = 400
    title = "The webhook's Stripe-Signature does not verify"


class SignatureMissing(Unauthenticated):
    """No Stripe-Signature at all: the caller is not Stripe (401, as for any missing credential);
    a signature that is there but does not verify is BadSignature (400, as Stripe asks)."""

    code = "stripe_signature_required"
    challenge = "Stripe-Signature"
