"""The billers' daily confirmation files, fetched from each biller's service (the URL and
credential clearing's bill workflow uses: settings biller_urls / biller_url / biller_token) as
CSV: payment_id, ack_id, account_no, bill_id, amount_fen, paid_at, channel. Reads only.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Protocol

import httpx

from clearing.settings import Settings, get_settings
from reconciliation.billers.matching import ConfirmationLine
from reconciliation.errors import BillerUnreachable

FIELDS = ("payment_id", "ack_id", "account_no", "bill_id", "amount_fen", "paid_at", "channel")


class ConfirmationSource(Protocol):
    async def lines(self, biller: str, day: date) -> list[ConfirmationLine]: ...


def parse_file(biller: str, day: date, text: str) -> list[ConfirmationLine]:
    """One confirmation file's lines; a line that does not parse is kept as unexplained-looking
    (its amount -1) so that it is never silently dropped."""
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            amount = int(row.get("amount_fen") or "")
        except ValueError:
            amount = -1
        out.append(
            ConfirmationLine(
                biller=biller,
                file_day=day,
                payment_id=str(row.get("payment_id") or "")[:64],
                ack_id=str(row.get("ack_id") or "")[:64],
                amount_fen=amount,
                bill_id=str(row.get("bill_id") or "")[:64],
            )
        )
    return out


class HttpConfirmationSource:
    """GET <biller url>/billers/<code>/confirmation-files/<day>.csv"""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def lines(self, biller: str, day: date) -> list[ConfirmationLine]:
        base = self.settings.biller_urls.get(biller, self.settings.biller_url).rstrip("/")
        token = self.settings.biller_token.get_secret_value()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"{base}/billers/{biller}/confirmation-files/{day.isoformat()}.csv"
        try:
            async with httpx.AsyncClient(
                timeout=self.settings.biller_timeout_s, headers=headers
            ) as client:
                response = await client.get(url)
        except httpx.HTTPError as error:
            raise BillerUnreachable(
                f"biller {biller}'s confirmation file of {day} cannot be fetched "
                f"({type(error).__name__}): run the day again once it answers"
            ) from None
        if response.status_code != httpx.codes.OK:
            raise BillerUnreachable(
                f"biller {biller} answered HTTP {response.status_code} for its file of {day}: "
                "run the day again once it serves it"
            )
        return parse_file(biller, day, response.text)


def confirmation_source_from_settings() -> ConfirmationSource | None:
    """The billers' services as the settings name them; None when none is configured."""
    settings = get_settings()
    if not settings.biller_url and not settings.biller_urls:
        return None
    return HttpConfirmationSource(settings)
