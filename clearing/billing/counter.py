"""Paying a bill at the biller's counter by card: the same bill flow, the card's own tap as the
money. The counter checks the card and the bill first (nothing charged on a refusal), the
counter terminal then debits the card in a purchase tap, and once the tap is uploaded the bill
is marked paid (bill_paid with "card:<no>", which posts nothing: the tap clears card:<no> →
payable:<biller> as every tap does, and settles with the biller's taps). Never commits.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from clearing.auth.models import Role
from clearing.auth.service import Principal, require_role
from clearing.billing import repository, service
from clearing.billing.adapter import AdapterSource
from clearing.billing.models import BillPayment, BillReceipt, PaymentChannel
from clearing.books import chart
from clearing.errors import Conflict, Forbidden, NotFound
from clearing.ingest import repository as ingest_repository
from clearing.records import TapKind, TapState
from clearing.registry import repository as registry_repository
from clearing.registry.models import CardStatus
from clearing.residents import service as residents_service
from ledger.port import LedgerPort


class CardNotUsable(Conflict):
    code = "card_not_usable"
    title = "The card cannot pay"


class CounterTapNotFound(Conflict):
    code = "counter_tap_not_found"
    title = "The card's tap for this bill has not been uploaded"


def require_counter_of(principal: Principal, biller_code: str, participant_id: int) -> None:
    """The biller's own counter (an operator token of the biller) or an admin."""
    require_role(principal, Role.ADMIN, Role.OPERATOR)
    if principal.role is Role.OPERATOR and principal.participant_id != participant_id:
        raise Forbidden(f"only {biller_code}'s own counter takes its bills")


async def start_counter_payment(
    session: AsyncSession,
    principal: Principal,
    *,
    biller_code: str,
    account_no: str,
    bill_id: str,
    amount_fen: int,
    card_no: str,
    request_id: str,
    adapters: AdapterSource | None = None,
    cap_fen: int | None = None,
) -> BillPayment:
    """Before the card is tapped: the card must be active (not lost, blocked, replaced or
    refunded) and the bill payable; the receipt will belong to the resident who linked the
    card (clearing/residents), or to no one (a walk-in's card, linked to no account)."""
    payee = await service.biller(session, biller_code)
    require_counter_of(principal, biller_code, payee.id)
    card = await registry_repository.card_by_no(session, card_no)
    if card is None:
        raise NotFound(f"no card {card_no}: check the number printed on the card")
    if card.status is not CardStatus.ACTIVE:
        raise CardNotUsable(
            f"card {card_no} is {card.status.value}: it cannot pay; ask for another card or "
            "another way to pay. Nothing was charged"
        )
    return await service.start_bill_payment(
        session,
        resident_id=await residents_service.linked_resident(session, card_no),
        biller_code=biller_code,
        account_no=account_no,
        bill_id=bill_id,
        amount_fen=amount_fen,
        channel=PaymentChannel.COUNTER.value,
        request_id=request_id,
        card_no=card_no,
        adapters=adapters,
        cap_fen=cap_fen,
    )


async def counter_tap_done(
    session: AsyncSession,
    principal: Principal,
    *,
    biller_code: str,
    payment_id: str,
    terminal_id: str,
    terminal_seq: int,
    ledger: LedgerPort | None,
) -> BillReceipt:
    """The counter terminal's purchase tap (uploaded) paid the bill: check it is this biller's
    terminal, this card and this amount, and not quarantined; then bill_paid (posts nothing)."""
    payee = await service.biller(session, biller_code)
    require_counter_of(principal, biller_code, payee.id)
    payment = await repository.payment(session, payment_id)
    if payment is None or payment.biller_code != biller_code:
        raise NotFound(f"{biller_code} has no bill payment {payment_id}")
    if payment.channel is not PaymentChannel.COUNTER or payment.card_no is None:
        raise Conflict(f"payment {payment_id} is not a counter payment")
    terminal = await registry_repository.terminal_by_id(session, terminal_id)
    if terminal is None or terminal.participant_id != payee.id:
        raise Forbidden(f"terminal {terminal_id} is not a counter terminal of {biller_code}")
    taps = await ingest_repository.taps_at(session, terminal_id, terminal_seq)
    tap = next(
        (
            t
            for t in taps
            if t.kind is TapKind.PURCHASE
            and t.card_no == payment.card_no
            and t.amount_fen == payment.amount_fen
            and t.state in (TapState.RECEIVED, TapState.CLEARED)
        ),
        None,
    )
    if tap is None:
        raise CounterTapNotFound(
            f"terminal {terminal_id} has uploaded no purchase of {payment.amount_fen} fen by "
            f"card {payment.card_no} at sequence {terminal_seq}: upload the terminal's journal, "
            "then send this again"
        )
    return await service.bill_paid(
        session,
        payment_id=payment_id,
        paid_from_account=chart.card(payment.card_no),
        external_ref=f"tap:{terminal_id}:{terminal_seq}",
        ledger=ledger,
    )
