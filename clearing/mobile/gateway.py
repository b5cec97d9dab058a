"""Stripe through the official SDK: PaymentIntents in CNY, refunds, fees, webhook signatures.

The only module that imports `stripe`. The secret key and the webhook secret come from the
settings and never appear in a log or an error message; the API base is a setting (localstripe
in tests and the demo, Stripe itself in production). Never touches the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import stripe

from clearing.mobile.errors import (
    BadSignature,
    PaymentDeclined,
    SignatureMissing,
    StripeUnavailable,
)
from clearing.settings import Settings

CURRENCY = "cny"
# Stripe refuses a signature older than this (its default tolerance, 5 minutes).
SIGNATURE_TOLERANCE_S = 300
STRIPE_TIMEOUT_S = 20
STRIPE_RETRIES_MAX = 2


@dataclass(frozen=True, slots=True)
class Intent:
    """What onecard keeps of a PaymentIntent."""

    id: str
    status: str
    amount_fen: int
    metadata: dict[str, str]
    latest_charge_id: str | None
    client_secret: str | None
    failure: str | None = None


def intent_of(obj: Any) -> Intent:
    """An Intent from a PaymentIntent as a plain dict (the SDK's `to_dict()`, or an event's)."""
    charge = obj.get("latest_charge")
    charge_id = charge if isinstance(charge, str) or charge is None else charge.get("id")
    error = obj.get("last_payment_error") or {}
    metadata = obj.get("metadata") or {}
    return Intent(
        id=str(obj["id"]),
        status=str(obj.get("status") or ""),
        amount_fen=int(obj.get("amount") or 0),
        metadata={str(k): str(v) for k, v in dict(metadata).items()},
        latest_charge_id=charge_id,
        client_secret=obj.get("client_secret"),
        failure=(error.get("message") or error.get("code")) if error else None,
    )


class StripeGateway:
    """One Stripe account, through an async `StripeClient` (one per event loop)."""

    def __init__(self, settings: Settings) -> None:
        key = settings.stripe_secret_key.get_secret_value()
        if not key:
            raise StripeUnavailable("top-ups need ONECARD_STRIPE_SECRET_KEY set on the server")
        self._webhook_secret = settings.stripe_webhook_secret.get_secret_value()
        options: dict[str, Any] = {
            "http_client": stripe.HTTPXClient(timeout=STRIPE_TIMEOUT_S),
            "max_network_retries": STRIPE_RETRIES_MAX,
        }
        if settings.stripe_api_base:
            options["base_addresses"] = {"api": settings.stripe_api_base}
        self.client = stripe.StripeClient(key, **options)

    async def create_intent(
        self,
        *,
        amount_fen: int,
        method_type: str,
        payment_method: str | None,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> Intent:
        """A PaymentIntent in CNY; with a payment method it is confirmed at once (a card).

        localstripe cannot confirm later (`confirm` with a method is not implemented there), so
        the method is given at creation, as Stripe also allows."""
        params: dict[str, Any] = {
            "amount": amount_fen,
            "currency": CURRENCY,
            "payment_method_types": [method_type],
            "metadata": metadata,
        }
        if payment_method:
            params["payment_method"] = payment_method
            params["confirm"] = True
        try:
            intent = await self.client.v1.payment_intents.create_async(
                params, {"idempotency_key": idempotency_key}
            )
        except stripe.CardError as error:
            raise PaymentDeclined(
                f"{error.user_message or 'the card was declined'}: try another payment method"
            ) from None
        except stripe.StripeError as error:
            raise _unavailable(error) from None
        return intent_of(intent.to_dict())

    async def retrieve_intent(self, payment_intent_id: str) -> Intent:
        try:
            intent = await self.client.v1.payment_intents.retrieve_async(payment_intent_id)
        except stripe.StripeError as error:
            raise _unavailable(error) from None
        return intent_of(intent.to_dict())

    async def fee_fen(self, charge_id: str | None) -> int:
        """Stripe's fee on a charge, from its balance transaction (0 where it names none)."""
        if not charge_id:
            return 0
        try:
            charge = await self.client.v1.charges.retrieve_async(charge_id)
            txn = charge.to_dict().get("balance_transaction")
            if not txn:
                return 0
            txn_id = txn if isinstance(txn, str) else txn.get("id")
            balance = await self.client.v1.balance_transactions.retrieve_async(txn_id)
        except stripe.StripeError as error:
            raise _unavailable(error) from None
        return int(balance.to_dict().get("fee") or 0)

    async def refund(self, payment_intent_id: str, idempotency_key: str) -> str:
        """Refund the whole PaymentIntent; the refund's id."""
        try:
            refund = await self.client.v1.refunds.create_async(
                {"payment_intent": payment_intent_id}, {"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as error:
            raise _unavailable(error) from None
        return str(refund.id)

    def verify_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event of a webhook delivery whose Stripe-Signature verifies, or BadSignature."""
        return verify_event(payload, signature, self._webhook_secret)


def verify_event(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """Stripe's own check (HMAC-SHA256 of "t.payload", timestamp within 5 minutes)."""
    if not signature:
        raise SignatureMissing("no Stripe-Signature header: only Stripe may call this endpoint")
    if not secret:
        raise BadSignature(
            "the server has no ONECARD_STRIPE_WEBHOOK_SECRET: no event can verify (Stripe retries)"
        )
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"), signature, secret, SIGNATURE_TOLERANCE_S
        )
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError):
        raise BadSignature(
            "the Stripe-Signature does not verify with this endpoint's secret (or is too old)"
        ) from None
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        raise BadSignature("a signed body that is not a Stripe event")
    return event


def _unavailable(error: stripe.StripeError) -> StripeUnavailable:
    # The SDK's message never carries the key; the request id helps Stripe's support.
    return StripeUnavailable(
        f"Stripe answered {type(error).__name__} ({error.user_message or error.code or 'no detail'}"
        f"; request {error.request_id or '-'}): try again in a minute"
    )
