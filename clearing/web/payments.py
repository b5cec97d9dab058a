"""Paying on the phone: top up a card, look up and pay a bill, see the receipts.

Both payments go through clearing/mobile/checkout.py (stored and committed, then Stripe's
PaymentIntent with an idempotency key). The key comes from the form: each rendering of a pay
form carries a fresh `form_key`, so a double click, a reload or a retried POST of one form is
one request id, one top-up, one charge; a new form is a new payment.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from clearing.billing import service as billing_service
from clearing.billing.adapter import adapters_from
from clearing.billing.rules import (
    AmountMismatch,
    AmountOverCap,
    BillAlreadyPaid,
    BillChanged,
    BillerUnavailable,
    BillExpired,
    UnknownBillAccount,
    UnknownBiller,
)
from clearing.errors import NotFound
from clearing.http.deps import SessionDep, SettingsDep, ledger_of
from clearing.mobile import checkout, rules
from clearing.mobile import service as mobile_service
from clearing.mobile.endpoints import gateway_of
from clearing.mobile.errors import AmountOverCap as TopupOverCap
from clearing.mobile.errors import (
    BalanceCapExceeded,
    CardNotUsable,
    PaymentDeclined,
    StripeUnavailable,
    TopupInProgress,
)
from clearing.mobile.models import PaymentMethodType, TopupState
from clearing.mobile.service import TopupRequest
from clearing.residents import service as residents_service
from clearing.residents.service import CardDetailView
from clearing.settings import Settings
from clearing.web.forms import Field, Form, InputKind, bind, blank
from clearing.web.guard import submitted
from clearing.web.i18n import N_
from clearing.web.pages import redirect, render
from clearing.web.session import PageNotFound, ResidentVisitor

router = APIRouter()
FORM_KEY_BYTES = 18
REQUEST_ID_PREFIX = "web-"
CardNoPath = Annotated[str, Path(pattern=r"^[0-9]{16}$")]
TopupIdPath = Annotated[str, Path(pattern=r"^tu_[0-9a-f]{32}$")]
PaymentIdPath = Annotated[str, Path(pattern=r"^bp_[0-9a-f]{32}$")]
ReceiptIdPath = Annotated[str, Path(pattern=r"^rc_[0-9a-f]{32}$")]
# Stripe's test card (test keys only): a resident types no card number into our pages.
TEST_CARD = "pm_card_visa"

METHODS = {
    PaymentMethodType.CARD.value: N_("Bank card (Stripe test card)"),
    PaymentMethodType.ALIPAY.value: N_("Alipay"),
    PaymentMethodType.WECHAT_PAY.value: N_("WeChat Pay"),
}
TOPUP_STATES = {
    TopupState.CREATED: N_("Being created"),
    TopupState.REQUIRES_ACTION: N_("Waiting for you to confirm it in the app"),
    TopupState.FAILED: N_("Not paid"),
    TopupState.SUCCEEDED: N_("Paid: the money goes onto the card at its next tap"),
    TopupState.DELIVERED: N_("On the card"),
    TopupState.REFUNDED: N_("Refunded"),
    TopupState.EXPIRED: N_("Not collected in time: refunded"),
}
BILL_LOOKUP_FIELDS = (
    Field(
        "biller",
        N_("Biller"),
        length_max=32,
        hint=N_("The code on the bill, for example city-water."),
        autocomplete="off",
    ),
    Field("account_no", N_("Account number"), length_max=32, autocomplete="off"),
)


def _methods(settings: Settings) -> tuple[tuple[str, str], ...]:
    """The methods offered: wallets always; a card only with Stripe test keys (its number is
    typed on Stripe's own page in production, which an offline network cannot show)."""
    testing = settings.stripe_secret_key.get_secret_value().startswith("sk_test_")
    return tuple(
        (value, label)
        for value, label in METHODS.items()
        if testing or value != PaymentMethodType.CARD.value
    )


def _topup_fields(settings: Settings) -> tuple[Field, ...]:
    return (
        Field(
            "amount",
            N_("Amount (yuan)"),
            InputKind.AMOUNT,
            length_max=12,
        ),
        Field("method", N_("Pay with"), InputKind.CHOICE, choices=_methods(settings)),
        Field("form_key", "", InputKind.HIDDEN, length_max=64),
    )


def _pay_fields(settings: Settings) -> tuple[Field, ...]:
    return (
        Field("method", N_("Pay with"), InputKind.CHOICE, choices=_methods(settings)),
        Field("biller", "", InputKind.HIDDEN, length_max=32),
        Field("account_no", "", InputKind.HIDDEN, length_max=32),
        Field("bill_id", "", InputKind.HIDDEN, length_max=64),
        Field("amount_fen", "", InputKind.HIDDEN, length_max=12),
        Field("form_key", "", InputKind.HIDDEN, length_max=64),
    )


def _new_key() -> str:
    return secrets.token_urlsafe(FORM_KEY_BYTES)


def _default_method(settings: Settings) -> str:
    return _methods(settings)[0][0]


# -- top-ups -----------------------------------------------------------------------------------


@router.get("/cards/{card_no}/topup", name="topup")
async def topup_page(
    request: Request,
    card_no: CardNoPath,
    visitor: ResidentVisitor,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    view = await _card_view(request, session, visitor.resident_id or "", card_no)
    form = blank(*_topup_fields(settings), method=_default_method(settings), form_key=_new_key())
    return render(request, "topup.html", view=view, form=form, cap_fen=settings.topup_fen_max)


async def _card_view(
    request: Request, session: AsyncSession, resident_id: str, card_no: str
) -> CardDetailView:
    try:
        return await residents_service.my_card(session, ledger_of(request), resident_id, card_no)
    except NotFound:
        raise PageNotFound() from None


@router.post("/cards/{card_no}/topup")
async def topup_submit(
    request: Request,
    card_no: CardNoPath,
    visitor: ResidentVisitor,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    resident_id = visitor.resident_id or ""
    view = await _card_view(request, session, resident_id, card_no)
    form = bind(_topup_fields(settings), submitted(request))
    if form.valid:
        method = PaymentMethodType(form.text("method"))
        request_id = REQUEST_ID_PREFIX + form.text("form_key")
        wanted = TopupRequest(
            card_no,
            form.amount_fen("amount"),
            request_id,
            method,
            TEST_CARD if method is PaymentMethodType.CARD else None,
        )
        refused = await _start_topup(request, session, settings, resident_id, wanted, form)
        if refused is None:
            topup_id = rules.topup_id_for(resident_id, request_id)
            return redirect(request, "topup_status", topup_id=topup_id)
    return render(request, "topup.html", 422, view=view, form=form, cap_fen=settings.topup_fen_max)


async def _start_topup(
    request: Request,
    session: SessionDep,
    settings: Settings,
    resident_id: str,
    wanted: TopupRequest,
    form: Form,
) -> Form | None:
    """Start it; None when it started (or already had), else the form with the refusal."""
    try:
        await checkout.start_topup(
            session,
            ledger_of(request),
            lambda: gateway_of(request, settings),
            resident_id,
            wanted,
            settings,
        )
    except TopupInProgress:
        return None  # the first click is being handled: its page shows how it goes
    except TopupOverCap:
        form.refuse(
            "amount",
            N_("At most %(cap_fen)s at a time."),
            cap_fen=settings.topup_fen_max,
        )
    except BalanceCapExceeded:
        form.refuse(
            "amount",
            N_("A card may hold at most %(cap_fen)s, pending loads included."),
            cap_fen=settings.card_balance_fen_max,
        )
    except CardNotUsable:
        form.refuse(None, N_("This card is no longer in use: top up its replacement."))
    except PaymentDeclined:
        form.refuse("method", N_("The payment was declined. Try another way to pay."))
        form.values["form_key"] = _new_key()  # the declined one is final: a new try
    except StripeUnavailable:
        form.refuse(None, N_("Payments are not available right now. Nothing was charged."))
    else:
        return None
    return form


@router.get("/topups/{topup_id}", name="topup_status")
async def topup_status(
    request: Request, topup_id: TopupIdPath, visitor: ResidentVisitor, session: SessionDep
) -> Response:
    try:
        topup = await mobile_service.topup_of(session, visitor.resident_id or "", topup_id)
    except NotFound:
        raise PageNotFound() from None
    return render(request, "topup_status.html", topup=topup, states=TOPUP_STATES, methods=METHODS)


# -- bills -------------------------------------------------------------------------------------


@router.get("/bills", name="bills")
async def bills_page(
    request: Request,
    visitor: ResidentVisitor,
    session: SessionDep,
    settings: SettingsDep,
    biller: str | None = None,
    account_no: str | None = None,
) -> Response:
    """Look a bill up (a GET form: a lookup changes nothing), then the form to pay it."""
    receipts = await billing_service.receipts_of(session, visitor.resident_id or "")
    if biller is None and account_no is None:
        return render(
            request,
            "bills.html",
            form=blank(*BILL_LOOKUP_FIELDS),
            bill=None,
            pay=None,
            receipts=receipts,
        )
    form = bind(BILL_LOOKUP_FIELDS, {"biller": biller or "", "account_no": account_no or ""})
    bill = None
    if form.valid:
        try:
            bill = await billing_service.lookup_bill(
                session,
                form.text("biller"),
                form.text("account_no"),
                adapters=adapters_from(settings),
            )
        except UnknownBiller:
            form.refuse("biller", N_("There is no biller with this code."))
        except UnknownBillAccount:
            form.refuse("account_no", N_("This biller has no such account."))
        except BillAlreadyPaid:
            form.refuse("account_no", N_("The bill of this account is already paid."))
        except BillExpired:
            form.refuse("account_no", N_("The bill of this account has expired: ask the biller."))
        except BillerUnavailable:
            form.refuse(None, N_("The biller does not answer right now. Try again later."))
    pay = None
    if bill is not None:
        pay = blank(
            *_pay_fields(settings),
            method=_default_method(settings),
            biller=bill.biller_code,
            account_no=bill.account_no,
            bill_id=bill.bill_id,
            amount_fen=str(bill.amount_due_fen),
            form_key=_new_key(),
        )
    status = 200 if form.valid else 422
    return render(request, "bills.html", status, form=form, bill=bill, pay=pay, receipts=receipts)


@router.post("/bills/pay", name="pay_bill")
async def pay_bill(
    request: Request, visitor: ResidentVisitor, session: SessionDep, settings: SettingsDep
) -> Response:
    resident_id = visitor.resident_id or ""
    form = bind(_pay_fields(settings), submitted(request))
    amount = form.values.get("amount_fen", "")
    if form.valid and not amount.isdigit():
        raise PageNotFound()  # not a form of ours
    if form.valid:
        method = PaymentMethodType(form.text("method"))
        charge = checkout.BillCharge(
            form.text("biller"),
            form.text("account_no"),
            form.text("bill_id"),
            int(amount),
            REQUEST_ID_PREFIX + form.text("form_key"),
            method,
            TEST_CARD if method is PaymentMethodType.CARD else None,
        )
        try:
            payment, _ = await checkout.start_bill_payment(
                session, lambda: gateway_of(request, settings), resident_id, charge, settings
            )
        except (
            BillAlreadyPaid,
            BillExpired,
            BillChanged,
            AmountMismatch,
            AmountOverCap,
            UnknownBillAccount,
            UnknownBiller,
        ):
            form.refuse(None, N_("This bill can no longer be paid as shown: look it up again."))
        except PaymentDeclined:
            form.refuse("method", N_("The payment was declined. Try another way to pay."))
        except (BillerUnavailable, StripeUnavailable):
            form.refuse(None, N_("Payments are not available right now. Nothing was charged."))
        else:
            return redirect(request, "bill_payment", payment_id=payment.id)
    receipts = await billing_service.receipts_of(session, resident_id)
    lookup = blank(
        *BILL_LOOKUP_FIELDS, biller=form.text("biller"), account_no=form.text("account_no")
    )
    return render(request, "bills.html", 422, form=lookup, bill=None, pay=form, receipts=receipts)


@router.get("/bills/payments/{payment_id}", name="bill_payment")
async def bill_payment_page(
    request: Request, payment_id: PaymentIdPath, visitor: ResidentVisitor, session: SessionDep
) -> Response:
    try:
        payment, receipt = await billing_service.payment_of(
            session, visitor.resident_id or "", payment_id
        )
    except NotFound:
        raise PageNotFound() from None
    return render(request, "bill_payment.html", payment=payment, receipt=receipt)


@router.get("/receipts/{receipt_id}", name="receipt")
async def receipt_page(
    request: Request, receipt_id: ReceiptIdPath, visitor: ResidentVisitor, session: SessionDep
) -> Response:
    try:
        receipt = await billing_service.receipt_of(session, visitor.resident_id or "", receipt_id)
    except NotFound:
        raise PageNotFound() from None
    return render(request, "receipt.html", receipt=receipt)
