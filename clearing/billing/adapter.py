"""Billers' adapters: how the back office asks a biller for a bill and tells it a bill is paid.

The first adapter speaks HTTP/JSON (the protocol of the biller service the project ships,
clearing/billing/simulator.py, docs in its module docstring). An adapter never touches the
database or the ledger; it turns the biller's answers into `Bill`s and typed errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import httpx

from clearing.billing.rules import (
    Bill,
    BillerProtocolError,
    BillerUnavailable,
    BillStatus,
    UnknownBillAccount,
)
from clearing.settings import Settings


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What the biller is told: our payment id is its idempotency key."""

    payment_id: str
    account_no: str
    bill_id: str
    amount_fen: int
    paid_at: datetime
    channel: str


class BillerAdapter(Protocol):
    async def lookup(self, account_no: str) -> Bill: ...

    async def confirm(self, confirmation: Confirmation) -> str:
        """The biller's acknowledgement id; BillerUnavailable while it cannot take it."""
        ...


class AdapterSource(Protocol):
    def __call__(self, biller_code: str) -> BillerAdapter: ...


class HttpBillerAdapter:
    """A biller's HTTP/JSON service: GET .../accounts/<no>/bill, POST .../confirmations."""

    def __init__(self, biller_code: str, base_url: str, token: str, timeout_s: float) -> None:
        self.biller_code = biller_code
        self._base = f"{base_url.rstrip('/')}/billers/{biller_code}"
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = timeout_s

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            async with httpx.AsyncClient(timeout=self._timeout, headers=self._headers) as client:
                response = await client.request(method, f"{self._base}{path}", json=body)
        except httpx.HTTPError as error:
            raise BillerUnavailable(
                f"biller {self.biller_code} cannot be reached ({type(error).__name__}): try "
                "again in a few minutes; nothing was charged"
            ) from error
        if response.status_code in (502, 503, 504):
            raise BillerUnavailable(
                f"biller {self.biller_code} is not answering (HTTP {response.status_code}): "
                "try again in a few minutes; nothing was charged"
            )
        return response

    async def lookup(self, account_no: str) -> Bill:
        response = await self._call("GET", f"/accounts/{account_no}/bill")
        if response.status_code == 404:
            raise UnknownBillAccount(
                f"biller {self.biller_code} has no account {account_no}: check the account "
                "number printed on the bill; nothing was charged"
            )
        body = self._json(response)
        try:
            return Bill(
                biller_code=self.biller_code,
                account_no=str(body["account_no"]),
                bill_id=str(body["bill_id"]),
                amount_due_fen=int(body["amount_due_fen"]),
                due_date=date.fromisoformat(body["due_date"]),
                period=str(body["period"]),
                status=BillStatus(body["status"]),
                holder_name=str(body.get("holder_name", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise BillerProtocolError(
                f"biller {self.biller_code} sent a bill we cannot read ({error!r})"
            ) from error

    async def confirm(self, confirmation: Confirmation) -> str:
        body = {
            "payment_id": confirmation.payment_id,
            "account_no": confirmation.account_no,
            "bill_id": confirmation.bill_id,
            "amount_fen": confirmation.amount_fen,
            "paid_at": confirmation.paid_at.isoformat(),
            "channel": confirmation.channel,
        }
        answer = self._json(await self._call("POST", "/confirmations", body))
        ack = answer.get("ack_id") if isinstance(answer, dict) else None
        if not isinstance(ack, str) or not ack:
            raise BillerProtocolError(f"biller {self.biller_code} acknowledged without an ack_id")
        return ack

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise BillerProtocolError(
                f"biller {self.biller_code} answered HTTP {response.status_code}: "
                f"{response.text[:200]}"
            )
        try:
            return response.json()
        except ValueError as error:
            raise BillerProtocolError(f"biller {self.biller_code} sent no JSON") from error


def adapters_from(settings: Settings) -> AdapterSource:
    """The adapter of each biller, from the settings (URL per biller, one credential)."""

    def adapter(biller_code: str) -> BillerAdapter:
        url = settings.biller_urls.get(biller_code, settings.biller_url)
        token = settings.biller_token.get_secret_value()
        return HttpBillerAdapter(biller_code, url, token, settings.biller_timeout_s)

    return adapter
