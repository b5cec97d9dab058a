"""Mobile routes: a resident's top-ups, Stripe's webhook, and staff's view of flagged top-ups.

Thin: parse, call the services, answer. A top-up is committed before Stripe is called (so
Stripe's webhook always finds it); the webhook is parsed only after its signature verifies.
"""

from __future__ import annotations

import asyncio
import random
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Request

from clearing.auth.dependencies import PrincipalDep
from clearing.billing import tasks as billing_tasks
from clearing.billing.schemas import BillPaymentOut
from clearing.errors import SecondPersonRequired
from clearing.http.bodies import StrictJsonRoute
from clearing.http.deps import SessionDep, SettingsDep, ledger_of
from clearing.http.problems import PROBLEM_RESPONSES
from clearing.mobile import checkout, events, service
from clearing.mobile.gateway import StripeGateway, verify_event
from clearing.mobile.schemas import (
    BillPaymentCreate,
    BillPaymentStarted,
    EventAck,
    FlaggedList,
    TopupCreate,
    TopupCreated,
    TopupList,
    TopupOut,
    TopupStaffOut,
)
from clearing.mobile.service import TopupRequest
from clearing.residents.dependencies import CurrentResident
from clearing.settings import Settings
from ledger.errors import LedgerConflictError

# A webhook whose transaction lost a ledger deadlock is applied again this often before the
# 409 goes back to Stripe (which then redelivers it later).
WEBHOOK_ATTEMPTS_MAX = 5

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", responses=PROBLEM_RESPONSES)

TopupIdPath = Annotated[str, Path(pattern=r"^tu_[0-9a-f]{32}$", description="A top-up's id")]
WEBHOOK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
        "description": "A Stripe event, as Stripe sends it (signed in the Stripe-Signature header)",
    }
}


def gateway_of(request: Request, settings: Settings) -> StripeGateway:
    """The app's Stripe gateway, made at its first use (StripeUnavailable without a key)."""
    gateway = getattr(request.app.state, "stripe_gateway", None)
    if gateway is None:
        gateway = StripeGateway(settings)
        request.app.state.stripe_gateway = gateway
    return gateway


@router.post(
    "/me/topups",
    status_code=201,
    tags=["mobile"],
    summary="Top up one of my cards (Stripe)",
    description="A resident pays an amount onto a card of theirs: card (confirmed at once with "
    "`payment_method`), Alipay or WeChat Pay (the phone finishes with the `client_secret`). "
    "Caps are checked before anything is charged. The same `request_id` again returns the same "
    "top-up and never charges twice. Once paid, the money is written onto the card at its next "
    "tap on any online bus validator, clinic terminal or load kiosk.",
)
async def create_topup(
    body: TopupCreate,
    request: Request,
    resident: CurrentResident,
    session: SessionDep,
    settings: SettingsDep,
) -> TopupCreated:
    wanted = TopupRequest(
        body.card_no,
        body.amount_fen,
        body.request_id,
        body.payment_method_type,
        body.payment_method,
    )
    topup, client_secret = await checkout.start_topup(
        session,
        ledger_of(request),
        lambda: gateway_of(request, settings),
        resident.resident_id,
        wanted,
        settings,
    )
    created = TopupCreated.model_validate(topup)
    return created.model_copy(update={"client_secret": client_secret})


@router.get(
    "/me/topups",
    tags=["mobile"],
    summary="My top-ups",
    description="The resident's top-ups, newest first (at most 100), with their state: created, "
    "requires_action, failed, succeeded (paid, waiting for the next tap), delivered (on the "
    "card), refunded or expired.",
)
async def list_topups(resident: CurrentResident, session: SessionDep) -> TopupList:
    topups = await service.topups_of(session, resident.resident_id)
    return TopupList(topups=[TopupOut.model_validate(t) for t in topups])


@router.get(
    "/me/topups/{topup_id}",
    tags=["mobile"],
    summary="One of my top-ups",
    description="A top-up of the resident's (404 for anyone else's).",
)
async def get_topup(
    topup_id: TopupIdPath, resident: CurrentResident, session: SessionDep
) -> TopupOut:
    return TopupOut.model_validate(await service.topup_of(session, resident.resident_id, topup_id))


@router.post(
    "/stripe/webhook",
    tags=["mobile"],
    summary="Stripe's webhook",
    description="Stripe's events (payment_intent.succeeded, payment_intent.payment_failed, "
    "charge.refunded, charge.dispute.created), verified by their Stripe-Signature (400 and "
    "nothing done if it does not verify), each applied once whatever the order and however "
    "often Stripe delivers it.",
    openapi_extra=WEBHOOK_BODY,
)
async def stripe_webhook(
    request: Request, background: BackgroundTasks, session: SessionDep, settings: SettingsDep
) -> EventAck:
    payload = await request.body()
    event = verify_event(
        payload,
        request.headers.get("stripe-signature"),
        settings.stripe_webhook_secret.get_secret_value(),
    )
    # Two events touching the same accounts at once can deadlock in the ledger: the loser rolls
    # back whole and applies its event again (events are idempotent), instead of making Stripe
    # wait for its own retry.
    for attempt in range(1, WEBHOOK_ATTEMPTS_MAX + 1):
        try:
            result = await events.handle_event(
                session, ledger_of(request), gateway_of(request, settings), event, settings
            )
            await session.commit()
            break
        except LedgerConflictError:
            await session.rollback()
            if attempt == WEBHOOK_ATTEMPTS_MAX:
                raise
            await asyncio.sleep(random.uniform(0.01, 0.05) * attempt)  # jitter
    if result.bill_payment_id:  # the biller is told after the commit (and by the beat sweep)
        background.add_task(
            billing_tasks.dispatch_after_commit,
            request.app.state.sessionmaker,
            [result.bill_payment_id],
        )
    return EventAck(
        event_id=result.event_id,
        outcome=result.outcome,
        detail=result.detail,
        duplicate=result.duplicate,
    )


@router.get(
    "/mobile/flagged-topups",
    tags=["mobile"],
    summary="Top-ups staff must look at",
    description="Finance or admin: disputed top-ups, refunds Stripe made after the load "
    "reached the card, second PaymentIntents for one top-up (newest first, at most 100).",
)
async def flagged_topups(principal: PrincipalDep, session: SessionDep) -> FlaggedList:
    topups = await service.flagged(session, principal)
    return FlaggedList(topups=[TopupStaffOut.model_validate(t) for t in topups])


@router.post(
    "/mobile/topups/{topup_id}/refund",
    tags=["mobile"],
    summary="Refund an undelivered top-up: ask a second officer",
    description="A refund needs a second person: this answers 409 second_person_required; ask "
    "with POST /v1/approvals (kind topup_refund) and a finance officer approves it (the load "
    "leaves the action list and the payment is refunded through Stripe then).",
)
async def refund_topup(
    topup_id: TopupIdPath, principal: PrincipalDep, session: SessionDep
) -> TopupStaffOut:
    await service.staff_topup(session, principal, topup_id)
    raise SecondPersonRequired(
        "a top-up refund needs a second person: ask with POST /v1/approvals "
        f'{{"kind": "topup_refund", "target": "{topup_id}", "reason": ...}}'
    )


@router.post(
    "/me/bill-payments",
    status_code=201,
    tags=["mobile"],
    summary="Pay a looked-up bill (Stripe)",
    description="A resident pays a water, power or heating bill looked up by account number "
    "(GET /v1/billers/{biller}/bills/{account_no}) through Stripe. The bill is checked before "
    "anything is charged (unknown account 404, paid or expired 409, wrong amount 422). Once "
    "Stripe's webhook says it is paid, the money goes to payable:<biller>, a receipt is kept and "
    "the biller is told. The same `request_id` again never pays twice.",
)
async def pay_bill(
    body: BillPaymentCreate,
    request: Request,
    resident: CurrentResident,
    session: SessionDep,
    settings: SettingsDep,
) -> BillPaymentStarted:
    charge = checkout.BillCharge(
        body.biller,
        body.account_no,
        body.bill_id,
        body.amount_fen,
        body.request_id,
        body.payment_method_type,
        body.payment_method,
    )
    payment, intent = await checkout.start_bill_payment(
        session, lambda: gateway_of(request, settings), resident.resident_id, charge, settings
    )
    if intent is None:
        return BillPaymentStarted(
            payment=BillPaymentOut.model_validate(payment),
            payment_intent_id=payment.external_ref,
            client_secret=None,
        )
    return BillPaymentStarted(
        payment=BillPaymentOut.model_validate(payment),
        payment_intent_id=intent.id,
        client_secret=intent.client_secret,
    )
