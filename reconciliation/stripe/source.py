"""What Stripe says, read through the official SDK (the client clearing's gateway configures:
key and API base from the settings, localstripe in tests). Paginated: Stripe lists newest first,
so each listing stops at the first object older than the window. Reads only.

Charges are listed with `created[gt]` (Stripe and localstripe both take it); balance
transactions and payouts without it (localstripe refuses it there) and the listing stops at the
first one older than the window (Stripe lists them newest first, as localstripe does balance
transactions).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import stripe

from clearing.mobile.errors import StripeUnavailable
from clearing.mobile.gateway import StripeGateway
from clearing.settings import Settings, get_settings
from reconciliation.stripe.matching import StripeCharge, StripePayout

PAGE_SIZE = 100  # Stripe's largest page
CHARGE_TYPES = frozenset({"charge", "payment"})
PAYOUT_ARRIVAL_DAYS_MAX = 14  # a payout arrives within days of its creation


class StripeSource(Protocol):
    async def charges(self, start: datetime, end: datetime) -> list[StripeCharge]: ...

    async def payouts(self, first: date, last: date) -> list[StripePayout]: ...


class StripeApiSource:
    """One Stripe account's balance transactions, charges and payouts."""

    def __init__(self, settings: Settings, page_size: int = PAGE_SIZE) -> None:
        self.client = StripeGateway(settings).client
        self.page_size = page_size

    async def charges(self, start: datetime, end: datetime) -> list[StripeCharge]:
        """The charge balance transactions created in [start, end), each with its intent."""
        txns = [
            txn
            async for txn in self._newest_first(self.client.v1.balance_transactions, start)
            if txn.get("type") in CHARGE_TYPES and _at(txn["created"]) < end
        ]
        intents = await self._intents(start, end)
        return [
            StripeCharge(
                txn_id=str(txn["id"]),
                charge_id=_id(txn.get("source")),
                payment_intent=intents.get(_id(txn.get("source"))),
                amount_fen=int(txn.get("amount") or 0),
                fee_fen=int(txn.get("fee") or 0),
                created=_at(txn["created"]),
            )
            for txn in txns
        ]

    async def payouts(self, first: date, last: date) -> list[StripePayout]:
        """Payouts arriving in [first, last] (a payout is created before it arrives)."""
        start = datetime(first.year, first.month, first.day, tzinfo=UTC)
        out = []
        created_from = start - timedelta(days=PAYOUT_ARRIVAL_DAYS_MAX)
        async for payout in self._newest_first(self.client.v1.payouts, created_from):
            arrival = _at(payout["arrival_date"]).date()
            if first <= arrival <= last:
                out.append(
                    StripePayout(
                        str(payout["id"]),
                        int(payout["amount"]),
                        arrival,
                        str(payout.get("status") or ""),
                    )
                )
        return out

    async def _intents(self, start: datetime, end: datetime) -> dict[str, str]:
        """Charge id -> PaymentIntent id, for the charges made in the window."""
        out = {}
        since = {"created": {"gt": int(start.timestamp()) - 1}}  # both Stripe and localstripe
        async for charge in self._newest_first(self.client.v1.charges, start, since):
            if _at(charge["created"]) < end and charge.get("payment_intent"):
                out[str(charge["id"])] = _id(charge["payment_intent"])
        return out

    async def _newest_first(
        self, service: Any, start: datetime, params: dict[str, Any] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            page = await service.list_async({"limit": self.page_size, **(params or {})})
            async for item in page.auto_paging_iter():
                obj = item.to_dict()
                if _at(obj["created"]) < start:
                    if params:
                        continue  # filtered by Stripe: nothing older is listed
                    return  # newest first: the rest is older still
                yield obj
        except stripe.StripeError as error:
            raise StripeUnavailable(
                f"Stripe answered {type(error).__name__} (request {error.request_id or '-'}) "
                "while reconciling: run the day again in a minute"
            ) from None


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(int(epoch), UTC)


def _id(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def stripe_source_from_settings() -> StripeSource | None:
    """Stripe's API as the server's settings name it; None without a Stripe key."""
    settings = get_settings()
    if not settings.stripe_secret_key.get_secret_value():
        return None
    return StripeApiSource(settings)
