"""The bill workflow: look a bill up at its biller, record the intent to pay, and once the money
is in, post it to the biller's payable once, mark the bill paid, keep a receipt and queue the
biller's confirmation (an outbox row, dispatched to Celery after the commit).

Two channels, one flow (`lookup_bill` → `start_bill_payment` → `bill_paid`):
- on the phone: the stripe workflow creates the PaymentIntent for a started payment and, on the
  webhook's success, calls `bill_paid(paid_from_account="stripe:balance")`: this posts
  stripe:balance → payable:<biller> (transfer id from the payment id: posted once);
- at the biller's counter by card: `start_counter_payment` checks the card (lost, blocked) and
  the bill before the card is charged; the counter terminal then debits the card in a purchase
  tap; `counter_tap_done` checks the uploaded tap (this biller's terminal, this card, this
  amount) and calls `bill_paid(paid_from_account="card:<no>", external_ref="tap:<T>:<seq>")`,
  which posts NOTHING: the tap clears as every tap does (card:<no> → payable:<biller>, settled
  with the biller's taps), so the card money moves exactly once, by the card's own TAC.
Never commits; endpoints and tasks own the transaction.
"""

from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.billing import repository
from clearing.billing.adapter import AdapterSource, adapters_from
from clearing.billing.models import (
    BillConfirmation,
    BillPayment,
    BillReceipt,
    ConfirmationState,
    PaymentChannel,
    PaymentStatus,
)
from clearing.billing.rules import (
    Bill,
    BillAlreadyPaid,
    UnknownBiller,
    mask_card_no,
    require_open,
    require_payable,
)
from clearing.books import chart
from clearing.books.chart import AccountType, InvalidAccountName
from clearing.books.codes import LEDGER_CNY, TransferCode
from clearing.books.service import ensure_accounts, ensure_ledger
from clearing.calendar import BusinessCalendar, parse_cutoff
from clearing.db.base import utc_now
from clearing.engine import repository as engine_repository
from clearing.errors import Conflict, InvalidRequest, NotFound, Unavailable
from clearing.registry import money
from clearing.registry import repository as registry_repository
from clearing.registry.models import Participant, ParticipantKind, ParticipantStatus
from clearing.settings import get_settings
from ledger import Transfer, account_id, transfer_id
from ledger.port import LedgerPort

# Where bill money may come from: Stripe's balance (phone), cash at a counter; a card pays by
# its own cleared purchase tap (see the module docstring).
_POSTED_SOURCES = frozenset({AccountType.STRIPE_BALANCE, AccountType.BANK_CASH})
RECEIPTS_PAGE_MAX = 200
PAYMENTS_PAGE_MAX = 500


class RequestIdReused(Conflict):
    code = "request_id_reused"
    title = "The request id was used for another payment"


class PaymentNotPayable(Conflict):
    code = "bill_payment_not_payable"
    title = "The bill payment cannot be completed this way"


# -- lookup ------------------------------------------------------------------------------------


async def biller(session: AsyncSession, biller_code: str) -> Participant:
    """The active utility participant `biller_code`, or UnknownBiller (404)."""
    found = await registry_repository.participant_by_code(session, biller_code)
    if (
        found is None
        or found.kind is not ParticipantKind.UTILITY
        or found.status is not ParticipantStatus.ACTIVE
    ):
        raise UnknownBiller(
            f"no active biller {biller_code!r}: list the billers with "
            "`onecard registry participant list` (kind utility)"
        )
    return found


async def lookup_bill(
    session: AsyncSession,
    biller_code: str,
    account_no: str,
    *,
    adapters: AdapterSource | None = None,
) -> Bill:
    """The bill due on `account_no` at biller `biller_code`, asked of the biller's adapter.

    Raises UnknownBiller / UnknownBillAccount (404), BillAlreadyPaid (409: the biller says so,
    or we paid it and the biller has not been told yet), BillExpired (409), BillerUnavailable
    (503). `adapters` defaults to the settings' (one HTTP adapter per biller)."""
    await biller(session, biller_code)
    source = adapters or adapters_from(get_settings())
    bill = await source(biller_code).lookup(account_no)
    paid = await repository.paid_payment_of_bill(session, _bill_key(biller_code, bill.bill_id))
    if paid is not None:
        raise BillAlreadyPaid(
            f"bill {bill.bill_id} of account {account_no} is already paid (payment {paid.id}); "
            "nothing to pay, nothing was charged"
        )
    require_open(bill)
    return bill


# -- start -------------------------------------------------------------------------------------


async def start_bill_payment(
    session: AsyncSession,
    *,
    resident_id: str | None,
    biller_code: str,
    account_no: str,
    bill_id: str,
    amount_fen: int,
    channel: str,
    request_id: str,
    card_no: str | None = None,
    adapters: AdapterSource | None = None,
    cap_fen: int | None = None,
) -> BillPayment:
    """Record the intent to pay bill `bill_id` of `account_no` at `biller_code`; nothing moves.

    `channel`: "stripe" (a resident on the phone; `resident_id` required) or "counter"
    (`card_no` required; use `start_counter_payment`, which checks the card). Idempotent on
    (resident, request_id): the same request returns the same payment; the same request id
    with another bill or amount is RequestIdReused (409). Refuses, before anything is charged:
    an unknown biller or account (404), a paid or expired bill (409), a bill id that is no
    longer the account's bill (409), an amount that is not the amount due or over the cap
    (`cap_fen`, default the setting bill_amount_fen_max) (422). Returns the payment (status
    "started"); its `id` is what `bill_paid` takes and the biller's idempotency key."""
    kind = _channel(channel)
    requester = _requester(kind, resident_id, biller_code, card_no)
    existing = await repository.payment_by_request(session, requester, request_id)
    if existing is not None:
        return _same_request(existing, biller_code, account_no, bill_id, amount_fen)
    bill = await lookup_bill(session, biller_code, account_no, adapters=adapters)
    require_payable(bill, bill_id, amount_fen, _cap_fen(cap_fen))
    payment = BillPayment(
        id=f"bp_{uuid.uuid4().hex}",
        requester=requester,
        request_id=request_id,
        resident_id=resident_id,
        biller_code=biller_code,
        account_no=account_no,
        bill_id=bill_id,
        period=bill.period,
        amount_fen=amount_fen,
        channel=kind,
        card_no=card_no,
        status=PaymentStatus.STARTED,
        paid_bill_key=None,
        paid_from_account=None,
        external_ref=None,
        transfer_id=None,
        settlement_day=None,
        created_at=utc_now(),
        paid_at=None,
    )
    session.add(payment)
    try:
        await session.flush()
    except IntegrityError as error:
        raise Conflict(
            f"request {request_id} is being handled by a concurrent call: send it again"
        ) from error
    return payment


def _channel(channel: str) -> PaymentChannel:
    try:
        return PaymentChannel(channel)
    except ValueError:
        names = ", ".join(c.value for c in PaymentChannel)
        raise InvalidRequest(f"channel must be one of {names}, not {channel!r}") from None


def _requester(
    kind: PaymentChannel, resident_id: str | None, biller_code: str, card_no: str | None
) -> str:
    if kind is PaymentChannel.COUNTER:
        if card_no is None:
            raise InvalidRequest("a counter payment names the card that pays")
        return f"counter:{biller_code}"
    if not resident_id:
        raise InvalidRequest("a payment on the phone needs the resident who pays")
    return resident_id


def _same_request(
    existing: BillPayment, biller_code: str, account_no: str, bill_id: str, amount_fen: int
) -> BillPayment:
    same = (existing.biller_code, existing.account_no, existing.bill_id, existing.amount_fen)
    if same != (biller_code, account_no, bill_id, amount_fen):
        raise RequestIdReused(
            f"request id {existing.request_id} already started payment {existing.id} of bill "
            f"{existing.bill_id}: use a new request id for another payment"
        )
    return existing


# -- paid --------------------------------------------------------------------------------------


async def bill_paid(
    session: AsyncSession,
    *,
    payment_id: str,
    paid_from_account: str,
    external_ref: str,
    ledger: LedgerPort | None,
    calendar: BusinessCalendar | None = None,
) -> BillReceipt:
    """The money for payment `payment_id` is in: post it, mark the bill paid, write the receipt
    and queue the biller's confirmation (outbox row; dispatch it after the commit with
    `clearing.billing.tasks.dispatch_confirmations([payment_id])`).

    `paid_from_account`: "stripe:balance" (or "bank:cash") posts it → payable:<biller>, transfer
    id derived from the payment id (a repeat posts nothing twice), in the caller's transaction;
    "card:<no>" (counter payments only) posts nothing: the card's purchase tap clears it.
    `external_ref`: the PaymentIntent id, or "tap:<terminal>:<seq>"; unique across payments.
    Idempotent: the same payment and ref returns the same receipt. Raises BillAlreadyPaid (409)
    if this bill was paid by another payment or ref (the stripe caller then refunds),
    NotFound (404) for an unknown payment id. Returns the receipt."""
    payment = await repository.payment_for_update(session, payment_id)
    if payment is None:
        raise NotFound(f"no bill payment {payment_id}")
    if payment.status is PaymentStatus.PAID:
        return await _repeat(session, payment, external_ref)
    source_type = _source_type(payment, paid_from_account)
    key = _bill_key(payment.biller_code, payment.bill_id)
    paid = await repository.paid_payment_of_bill(session, key)
    if paid is not None:
        raise BillAlreadyPaid(
            f"bill {payment.bill_id} was already paid by payment {paid.id}: refund payment "
            f"{payment.id}"
        )
    now = utc_now()
    payment.status = PaymentStatus.PAID
    payment.paid_bill_key = key
    payment.paid_from_account = paid_from_account
    payment.external_ref = external_ref
    payment.paid_at = now
    try:
        await session.flush()
    except IntegrityError as error:
        raise BillAlreadyPaid(
            f"bill {payment.bill_id} or reference {external_ref} was paid concurrently by "
            f"another payment: refund payment {payment.id}"
        ) from error
    if source_type is not AccountType.CARD:
        await _post(session, ledger, payment, calendar)
    return await _receipt_and_outbox(session, payment, await biller(session, payment.biller_code))


async def _repeat(session: AsyncSession, payment: BillPayment, external_ref: str) -> BillReceipt:
    receipt = await repository.receipt_of_payment(session, payment.id)
    if payment.external_ref != external_ref or receipt is None:
        raise BillAlreadyPaid(
            f"payment {payment.id} was already paid by {payment.external_ref}, not "
            f"{external_ref}: refund {external_ref}"
        )
    return receipt


def _source_type(payment: BillPayment, paid_from_account: str) -> AccountType:
    try:
        source_type, _ = chart.parse_account(paid_from_account)
    except InvalidAccountName as error:
        raise InvalidRequest(str(error)) from error
    if source_type is AccountType.CARD:
        if payment.channel is not PaymentChannel.COUNTER or paid_from_account != chart.card(
            payment.card_no or "0" * 16
        ):
            raise PaymentNotPayable(
                f"payment {payment.id} is not a counter payment by {paid_from_account}"
            )
        return source_type
    if source_type not in _POSTED_SOURCES or payment.channel is PaymentChannel.COUNTER:
        raise PaymentNotPayable(
            f"a {payment.channel.value} bill payment cannot be paid from {paid_from_account}"
        )
    return source_type


async def _post(
    session: AsyncSession,
    ledger: LedgerPort | None,
    payment: BillPayment,
    calendar: BusinessCalendar | None,
) -> None:
    """paid_from → payable:<biller>, settled on the payment's settlement day (its business day,
    or the first unsettled one: the clearing lock orders this against a settlement run)."""
    if ledger is None:
        raise Unavailable("the ledger is not available: the bill cannot be posted")
    conn = await session.connection()
    await engine_repository.take_clearing_lock(conn)
    calendar = calendar or _calendar()
    now = payment.paid_at or utc_now()
    last = await engine_repository.last_settled_day(conn)
    payment.settlement_day = calendar.settlement_day(now, now, last)
    payable = chart.payable(payment.biller_code)
    source = payment.paid_from_account or ""
    await ensure_ledger(ledger, conn=conn)
    await ensure_accounts(ledger, [*chart.FIXED_ACCOUNTS, source, payable], conn=conn)
    transfer = bill_transfer(payment.id, source, payable, payment.amount_fen)
    await money.post(ledger, [transfer], conn=conn)
    payment.transfer_id = f"{transfer.id:032x}"
    await session.flush()


def bill_transfer(payment_id: str, source: str, payable: str, amount_fen: int) -> Transfer:
    """The one transfer of a bill paid: its id is derived from the payment id."""
    return Transfer(
        id=transfer_id(f"bill-paid:{payment_id}"),
        debit_account_id=account_id(source),
        credit_account_id=account_id(payable),
        amount=amount_fen,
        ledger=LEDGER_CNY,
        code=int(TransferCode.BILL_PAYMENT),
    )


async def _receipt_and_outbox(
    session: AsyncSession, payment: BillPayment, payee: Participant
) -> BillReceipt:
    now = payment.paid_at or utc_now()
    paid_from = mask_card_no(payment.card_no) if payment.card_no else payment.channel.value
    receipt = BillReceipt(
        id=f"rc_{uuid.uuid4().hex}",
        payment_id=payment.id,
        resident_id=payment.resident_id,
        biller_code=payment.biller_code,
        biller_name=payee.name,
        account_no=payment.account_no,
        bill_id=payment.bill_id,
        period=payment.period,
        amount_fen=payment.amount_fen,
        channel=payment.channel,
        paid_from=paid_from,
        paid_at=now,
    )
    session.add(receipt)
    session.add(
        BillConfirmation(
            payment_id=payment.id,
            state=ConfirmationState.PENDING,
            attempts=0,
            last_error=None,
            biller_ack=None,
            created_at=now,
            dispatched_at=None,
            acknowledged_at=None,
        )
    )
    await session.flush()
    return receipt


# -- receipts and staff views ------------------------------------------------------------------


async def receipts_of(session: AsyncSession, resident_id: str) -> list[BillReceipt]:
    """The calling resident's own receipts, newest first."""
    return await repository.receipts_of(session, resident_id, RECEIPTS_PAGE_MAX)


async def receipt_of(session: AsyncSession, resident_id: str, receipt_id: str) -> BillReceipt:
    """One of the calling resident's receipts; another's, or none, is 404 alike."""
    found = await repository.receipt(session, receipt_id)
    if found is None or found.resident_id != resident_id:
        raise NotFound(f"you have no receipt {receipt_id}: list yours at /v1/me/receipts")
    return found


async def payment_of(
    session: AsyncSession, resident_id: str, payment_id: str
) -> tuple[BillPayment, BillReceipt | None]:
    """One of the calling resident's bill payments and its receipt once paid; another's, or
    none, is 404 alike."""
    found = await repository.payment(session, payment_id)
    if found is None or found.resident_id != resident_id:
        raise NotFound(f"you have no bill payment {payment_id}")
    return found, await repository.receipt_of_payment(session, payment_id)


async def list_payments(
    session: AsyncSession,
    *,
    biller_code: str | None = None,
    status: PaymentStatus | None = None,
    limit: int = 100,
) -> list[tuple[BillPayment, BillConfirmation | None]]:
    """Staff: bill payments, newest first, with their confirmation (None until paid)."""
    return await repository.list_payments(
        session, biller_code=biller_code, status=status, limit=max(1, min(limit, PAYMENTS_PAGE_MAX))
    )


# -- helpers -----------------------------------------------------------------------------------


def _bill_key(biller_code: str, bill_id: str) -> str:
    return f"{biller_code}:{bill_id}"


def _cap_fen(cap_fen: int | None) -> int:
    return cap_fen if cap_fen is not None else get_settings().bill_amount_fen_max


def _calendar() -> BusinessCalendar:
    settings = get_settings()
    return BusinessCalendar(
        ZoneInfo(settings.business_time_zone), parse_cutoff(settings.settlement_cutoff)
    )
