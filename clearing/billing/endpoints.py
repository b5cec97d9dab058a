"""Bill routes: a resident looks a bill up and opens their receipts; a biller's counter takes a
bill paid by card; staff list bill payments and their confirmations. Thin: parse, call, answer;
confirmations are queued after the commit (background task)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request

from clearing.auth.dependencies import PrincipalDep
from clearing.auth.models import Role
from clearing.auth.service import require_role
from clearing.billing import counter, service, tasks
from clearing.billing.adapter import adapters_from
from clearing.billing.models import PaymentStatus
from clearing.billing.schemas import (
    AccountNo,
    BillerCode,
    BillOut,
    BillPaymentOut,
    ConfirmationOut,
    CounterPaymentStart,
    CounterTap,
    ReceiptOut,
    StaffBillPaymentOut,
)
from clearing.http.bodies import StrictJsonRoute
from clearing.http.deps import SessionDep, SettingsDep, ledger_of
from clearing.http.problems import PROBLEM_MEDIA_TYPE, PROBLEM_RESPONSES, Problem
from clearing.residents.dependencies import CurrentResident

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", responses=PROBLEM_RESPONSES)
# Routes that ask the biller: it may be down (503) or answer what we cannot read (502).
BILLER_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}} for status in (502, 503)
}

BillerPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,31}$")]
PaymentIdPath = Annotated[str, Path(pattern=r"^bp_[0-9a-f]{32}$")]
ReceiptIdPath = Annotated[str, Path(pattern=r"^rc_[0-9a-f]{32}$")]


@router.get(
    "/me/bills",
    tags=["bills"],
    responses=BILLER_RESPONSES,
    summary="Look up a bill",
    description="Resident: the bill due on an account at a biller (water, power, heating), as "
    "the biller reports it. Unknown account 404; a paid or expired bill 409.",
)
async def lookup_bill(
    biller: Annotated[BillerCode, Query(description="The biller's participant code")],
    account_no: Annotated[AccountNo, Query(description="The account number on the bill")],
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
) -> BillOut:
    require_role(principal, Role.RESIDENT, Role.ADMIN)
    bill = await service.lookup_bill(session, biller, account_no, adapters=adapters_from(settings))
    return BillOut.model_validate(bill)


@router.get(
    "/me/receipts",
    tags=["bills"],
    summary="My bill receipts",
    description="Resident: the receipts of the bills you paid, newest first.",
)
async def my_receipts(resident: CurrentResident, session: SessionDep) -> list[ReceiptOut]:
    receipts = await service.receipts_of(session, resident.resident_id)
    return [ReceiptOut.model_validate(r) for r in receipts]


@router.get(
    "/me/receipts/{receipt_id}",
    tags=["bills"],
    summary="One of my bill receipts",
    description="Resident: one of your receipts; anyone else's is 404.",
)
async def my_receipt(
    receipt_id: ReceiptIdPath, resident: CurrentResident, session: SessionDep
) -> ReceiptOut:
    receipt = await service.receipt_of(session, resident.resident_id, receipt_id)
    return ReceiptOut.model_validate(receipt)


@router.post(
    "/billers/{biller}/counter-payments",
    tags=["bills"],
    responses=BILLER_RESPONSES,
    summary="Start a bill payment by card at the biller's counter",
    description="The biller's counter (operator token) or admin: checks the card (lost or "
    "blocked cards cannot pay) and the bill before the card is tapped; nothing is charged. "
    "Repeating the same request id returns the same payment.",
)
async def start_counter_payment(
    biller: BillerPath,
    body: CounterPaymentStart,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
) -> BillPaymentOut:
    payment = await counter.start_counter_payment(
        session,
        principal,
        biller_code=biller,
        account_no=body.account_no,
        bill_id=body.bill_id,
        amount_fen=body.amount_fen,
        card_no=body.card_no,
        request_id=body.request_id,
        adapters=adapters_from(settings),
        cap_fen=settings.bill_amount_fen_max,
    )
    return BillPaymentOut.model_validate(payment)


@router.post(
    "/billers/{biller}/counter-payments/{payment_id}/tap",
    tags=["bills"],
    summary="The card's tap paid the bill",
    description="The counter terminal's purchase tap (uploaded) paid the bill: the bill is "
    "marked paid, a receipt is written for the card's holder and the biller is told (retried "
    "until it acknowledges). The tap itself clears card → payable:<biller> once.",
)
async def counter_tap(
    biller: BillerPath,
    payment_id: PaymentIdPath,
    body: CounterTap,
    principal: PrincipalDep,
    session: SessionDep,
    request: Request,
    background: BackgroundTasks,
) -> ReceiptOut:
    receipt = await counter.counter_tap_done(
        session,
        principal,
        biller_code=biller,
        payment_id=payment_id,
        terminal_id=body.terminal_id,
        terminal_seq=body.terminal_seq,
        ledger=ledger_of(request),
    )
    background.add_task(tasks.dispatch_after_commit, request.app.state.sessionmaker, [payment_id])
    return ReceiptOut.model_validate(receipt)


@router.get(
    "/bill-payments",
    tags=["bills"],
    summary="Bill payments and their confirmations",
    description="Admin and finance: bill payments, newest first, with whether the biller "
    "acknowledged them; an operator sees its own biller's.",
)
async def list_bill_payments(
    principal: PrincipalDep,
    session: SessionDep,
    biller: Annotated[BillerCode | None, Query(description="Only this biller")] = None,
    status: Annotated[PaymentStatus | None, Query(description="Only this status")] = None,
    limit: Annotated[int, Query(ge=1, le=service.PAYMENTS_PAGE_MAX)] = 100,
) -> list[StaffBillPaymentOut]:
    require_role(principal, Role.ADMIN, Role.FINANCE, Role.OPERATOR)
    if principal.role is Role.OPERATOR:
        biller = principal.subject
    rows = await service.list_payments(session, biller_code=biller, status=status, limit=limit)
    return [
        StaffBillPaymentOut.model_validate(
            {
                **BillPaymentOut.model_validate(p).model_dump(),
                "resident_id": p.resident_id,
                "confirmation": ConfirmationOut.model_validate(c) if c else None,
            }
        )
        for p, c in rows
    ]
