"""The bill API over HTTP against the real biller service: a resident looks bills up and opens
only their own receipts; the counter takes a bill paid by card; staff see the confirmation; and
every bad input is a problem response saying what to do, with nothing charged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import func, select

from clearing.auth.models import Role
from clearing.billing.models import BillPayment
from clearing.celery_app import app as celery_app
from clearing.registry import service as registry_service
from clearing.registry.models import ParticipantKind, TerminalKind
from clearing.registry.schemas import CardIssue, ParticipantCreate, TerminalCreate
from clearing.settings import ESCROW_ACCOUNT_DEFAULT, get_settings
from tests.clearing import residentharness
from tests.clearing.apiharness import (
    SignedTerminal,
    batch_body,
    public_hex,
    random_card_no,
    random_terminal_id,
    running_app,
    tap_record,
)
from tests.clearing.billerharness import BillerService, biller_service

__all__ = ["biller_service"]

WATER = "city-water"


@dataclass
class Counter:
    app: FastAPI
    client: httpx.AsyncClient
    terminal: SignedTerminal
    card_no: str
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
async def api(
    sqlite_url: str,
    tmp_path: Path,
    biller_service: BillerService,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Counter]:
    monkeypatch.setenv("ONECARD_DATABASE_URL", sqlite_url)  # the confirmation task's database
    monkeypatch.setenv("ONECARD_BILLER_URL", biller_service.url)
    get_settings.cache_clear()
    celery_app.set_current()  # as `onecard serve` does: the API queues confirmations on it
    assert celery_app.conf.task_always_eager
    key = Ed25519PrivateKey.generate()
    terminal_id, card_no = random_terminal_id(), random_card_no()
    async with running_app(sqlite_url, tmp_path) as (app, client):
        async with app.state.sessionmaker() as session:
            for code, kind in ((WATER, ParticipantKind.UTILITY), ("bus-9", "bus_operator")):
                await registry_service.create_participant(
                    session,
                    ParticipantCreate(
                        code=code,
                        name=f"{code} Co.",
                        kind=kind,
                        commission_bp=80,
                        bank_account="6222000000000080",
                        bank_name="Bank of the City",
                    ),
                    escrow_account=ESCROW_ACCOUNT_DEFAULT,
                )
            await registry_service.register_terminal(
                session,
                TerminalCreate(
                    terminal_id=terminal_id,
                    participant=WATER,
                    kind=TerminalKind.UTILITY,
                    line=None,
                    public_key=public_hex(key),
                ),
            )
            await registry_service.issue_card(
                session,
                app.state.ledger,
                CardIssue(
                    card_no=card_no,
                    card_type="adult",
                    holder_id="walk-in",
                    holder_name="Resident A",
                    deposit_fen=0,
                    first_load_fen=10_000,
                ),
                "test",
            )
            tokens = {}
            for who, role, subject in (
                ("admin", Role.ADMIN, None),
                ("water", Role.OPERATOR, WATER),
                ("bus", Role.OPERATOR, "bus-9"),
            ):
                tokens[who], _ = await registry_service.issue_token(
                    session, role, subject=subject, label="test"
                )
            await session.commit()
        # residents a and b sign up; a links the card (its balance proves it)
        for who in ("a", "b"):
            signed_in = await residentharness.new_resident(SimpleNamespace(client=client))
            tokens[who] = signed_in.access_token
            if who == "a":
                linked = await residentharness.link(
                    SimpleNamespace(client=client), signed_in, card_no, 10_000
                )
                assert linked.status_code == 201, linked.text
        yield Counter(app, client, SignedTerminal(terminal_id, key, client), card_no, tokens)
    get_settings.cache_clear()


def problem(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    return str(body["detail"])


async def start_at_counter(
    api: Counter, account_no: str, bill_id: str, amount_fen: int, who: str = "water"
) -> httpx.Response:
    return await api.client.post(
        f"/v1/billers/{WATER}/counter-payments",
        json={
            "account_no": account_no,
            "bill_id": bill_id,
            "amount_fen": amount_fen,
            "card_no": api.card_no,
            "request_id": f"req-{account_no}",
        },
        headers=api.auth(who),
    )


async def test_a_bill_paid_at_the_counter_gives_its_holder_a_receipt_only_they_can_open(
    api: Counter, biller_service: BillerService
) -> None:
    bill = biller_service.add_bill(WATER, 2_345)
    looked = await api.client.get(
        "/v1/me/bills",
        params={"biller": WATER, "account_no": bill["account_no"]},
        headers=api.auth("a"),
    )
    assert looked.status_code == 200, looked.text
    assert looked.json()["amount_due_fen"] == 2_345
    started = await start_at_counter(api, bill["account_no"], bill["bill_id"], 2_345)
    assert started.status_code == 200, started.text
    payment_id = started.json()["id"]
    record = tap_record(api.card_no, 1, 1, amount_fen=2_345)
    uploaded = await api.terminal.post_batch(batch_body("b-1", [record]))
    assert uploaded.status_code in (200, 201), uploaded.text

    paid = await api.client.post(
        f"/v1/billers/{WATER}/counter-payments/{payment_id}/tap",
        json={"terminal_id": api.terminal.terminal_id, "terminal_seq": 1},
        headers=api.auth("water"),
    )
    assert paid.status_code == 200, paid.text
    receipt = paid.json()

    mine = await api.client.get("/v1/me/receipts", headers=api.auth("a"))
    assert [r["id"] for r in mine.json()] == [receipt["id"]]
    opened = await api.client.get(f"/v1/me/receipts/{receipt['id']}", headers=api.auth("a"))
    assert opened.json()["amount_fen"] == 2_345
    other = await api.client.get(f"/v1/me/receipts/{receipt['id']}", headers=api.auth("b"))
    problem(other, 404, "not_found")
    assert (await api.client.get("/v1/me/receipts", headers=api.auth("b"))).json() == []

    staff = await api.client.get("/v1/bill-payments", headers=api.auth("admin"))
    [row] = [p for p in staff.json() if p["id"] == payment_id]
    assert row["status"] == "paid"
    assert row["confirmation"]["state"] == "acknowledged"  # queued after the commit
    assert (await api.client.get("/v1/bill-payments", headers=api.auth("bus"))).json() == []


async def test_bad_bill_lookups_say_what_to_do(api: Counter, biller_service: BillerService) -> None:
    async def lookup(biller: str, account_no: str) -> httpx.Response:
        return await api.client.get(
            "/v1/me/bills",
            params={"biller": biller, "account_no": account_no},
            headers=api.auth("a"),
        )

    assert "account number" in problem(await lookup(WATER, "W9999"), 404, "unknown_bill_account")
    assert "new bill" in problem(await lookup(WATER, "W1091"), 409, "bill_expired")
    problem(await lookup(WATER, "W1090"), 409, "bill_already_paid")
    problem(await lookup("bus-9", "W1001"), 404, "unknown_biller")
    biller_service.outage(requests=1)
    assert "try again" in problem(await lookup(WATER, "W1001"), 503, "biller_unavailable")


async def test_bad_counter_payments_are_refused_and_nothing_starts(
    api: Counter, biller_service: BillerService
) -> None:
    big = await api.client.get(
        "/v1/me/bills", params={"biller": WATER, "account_no": "W1099"}, headers=api.auth("a")
    )
    big_bill = big.json()
    over = await start_at_counter(api, "W1099", big_bill["bill_id"], big_bill["amount_due_fen"])
    assert "cap" in problem(over, 422, "bill_amount_over_cap")
    bill = biller_service.add_bill(WATER, 900)
    wrong = await start_at_counter(api, bill["account_no"], bill["bill_id"], 901)
    assert "900" in problem(wrong, 422, "bill_amount_mismatch")
    other_biller = await start_at_counter(api, bill["account_no"], bill["bill_id"], 900, "bus")
    problem(other_biller, 403, "forbidden")
    lost = await api.client.post(
        f"/v1/cards/{api.card_no}/report-lost",
        json={"reason": "lost on the bus"},
        headers=api.auth("a"),
    )
    assert lost.status_code == 200, lost.text
    refused = await start_at_counter(api, bill["account_no"], bill["bill_id"], 900)
    assert "lost" in problem(refused, 409, "card_not_usable")
    async with api.app.state.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(BillPayment)) == 0
