"""Second-person approval: a write-off (of a quarantined record or of a reconciliation break), a
refund or an early settlement is first a request;
another finance officer approves it (and it is carried out, once, in the same transaction) or
rejects it with a reason. The one who asks is never the one who decides.

People are named staff accounts (clearing/staff): a token or a console sign-in stands for one
by its subject, so two tokens of one person are still one person. Never commits; files of an
early settlement are written by the caller after its commit (`write_settlement_files`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.approvals import repository
from clearing.approvals.models import ApprovalKind, ApprovalRequest, ApprovalState
from clearing.auth.models import Role
from clearing.auth.service import Principal
from clearing.calendar import BUSINESS_DAY_FIRST, BUSINESS_DAY_LAST
from clearing.cards import service as cards_service
from clearing.db.base import utc_now
from clearing.errors import Conflict, Forbidden, InvalidRequest, NotFound
from clearing.mobile import repository as mobile_repository
from clearing.mobile import service as mobile_service
from clearing.mobile.errors import NotRefundable, RefundAfterDelivery
from clearing.mobile.models import TopupState
from clearing.quarantine import service as quarantine_service
from clearing.records import TapState
from clearing.registry import repository as registry_repository
from clearing.registry import service as registry_service
from clearing.registry.lifecycle import CardAction
from clearing.settings import Settings
from clearing.settlement import service as settlement_service
from clearing.staff import service as staff_service
from ledger.port import LedgerPort
from reconciliation import service as reconciliation_service

REASON_LENGTH_MAX = 2000
OUTCOME_LENGTH_MAX = 400
PAGE_MAX = 200
PAID_BY = ("cash", "bank")
# Who may ask for what; only finance decides.
ASKERS = {
    ApprovalKind.WRITE_OFF: (Role.FINANCE,),
    ApprovalKind.EARLY_SETTLEMENT: (Role.FINANCE,),
    ApprovalKind.BREAK_WRITE_OFF: (Role.FINANCE,),
    ApprovalKind.CARD_REFUND: (Role.FINANCE, Role.ADMIN),
    ApprovalKind.TOPUP_REFUND: (Role.FINANCE, Role.ADMIN),
}

# Refund a PaymentIntent at Stripe: (payment_intent_id, idempotency_key) -> the refund's id.
StripeRefund = Callable[[str, str], Awaitable[str]]


class RequesterCannotDecide(Forbidden):
    code = "requester_cannot_decide"
    title = "The one who asked cannot decide"


class AlreadyDecided(Conflict):
    code = "approval_already_decided"
    title = "The request was already decided"


class AlreadyRequested(Conflict):
    code = "approval_already_requested"
    title = "The same thing is already waiting for approval"


class NotNeeded(Conflict):
    code = "approval_not_needed"
    title = "This needs no second person"


class NotAStaffMember(Forbidden):
    code = "not_a_named_staff_member"
    title = "Approvals need a named staff member"


@dataclass(frozen=True, slots=True)
class Tools:
    """What carrying out a request may need: the ledger (money moves), the settings (calendar,
    escrow account) and Stripe (a top-up refund). Given by the entry point."""

    ledger: LedgerPort | None
    settings: Settings
    stripe_refund: StripeRefund | None = None


@dataclass(frozen=True, slots=True)
class Decided:
    request: ApprovalRequest
    settlement: settlement_service.Settlement | None = None  # files to write after the commit
    again: bool = False  # decided before, by the same officer the same way: nothing was done


async def _person(session: AsyncSession, principal: Principal, *roles: Role) -> str:
    """The username a principal stands for, once it is known to be an active staff account
    holding one of `roles`."""
    if not principal.subject or not principal.has_role(*roles):
        names = ", ".join(role.value for role in roles)
        raise NotAStaffMember(
            f"this needs a named staff member with the role {names}: sign in to the console, "
            "or use a token issued with --subject <staff username>"
        )
    for role in roles:
        if principal.has_role(role):
            try:
                account = await staff_service.active_staff_with(session, principal.subject, role)
            except NotFound:
                continue
            return account.username
    raise NotAStaffMember(
        f"{principal.subject!r} is not an active staff account with the role needed: "
        "`onecard staff add` makes one"
    )


def _text(text: str, what: str) -> str:
    text = text.strip()
    if not 1 <= len(text) <= REASON_LENGTH_MAX:
        raise InvalidRequest(f"say {what} in 1 .. {REASON_LENGTH_MAX} characters")
    return text


def _day(target: str) -> date:
    try:
        day = date.fromisoformat(target)
    except ValueError:
        raise InvalidRequest(f"{target!r} is not a business day YYYY-MM-DD") from None
    if not BUSINESS_DAY_FIRST <= day <= BUSINESS_DAY_LAST:
        raise InvalidRequest(f"business days run from {BUSINESS_DAY_FIRST} to {BUSINESS_DAY_LAST}")
    return day


def _tap_id(target: str) -> int:
    if not target.isdigit() or not 1 <= int(target) <= 2**62:
        raise InvalidRequest(f"{target!r} is not a tap record id")
    return int(target)


def _break_id(target: str) -> int:
    if not target.isdigit() or not 1 <= int(target) <= 2**62:
        raise InvalidRequest(f"{target!r} is not a reconciliation break id")
    return int(target)


async def _check_break_write_off(session: AsyncSession, target: str) -> None:
    """The break exists and is open (BreakNotFound, BreakClosed otherwise)."""
    await reconciliation_service.open_break(await session.connection(), _break_id(target))


async def _check_write_off(session: AsyncSession, target: str) -> None:
    detail = await quarantine_service.show(await session.connection(), _tap_id(target))
    if detail.record["state"] != TapState.QUARANTINED.value:
        raise quarantine_service.NotQuarantined(
            f"tap record {target} is {detail.record['state']}, not quarantined"
        )


async def _check_early_settlement(session: AsyncSession, target: str, tools: Tools) -> None:
    day = _day(target)
    calendar = settlement_service.calendar_of(tools.settings)
    now = utc_now()
    if await settlement_service.load_settlement(await session.connection(), day) is not None:
        raise NotNeeded(f"business day {day} is already settled")
    if calendar.is_closed(day, now):
        raise NotNeeded(f"business day {day} has closed: settle it, no approval is needed")
    current = calendar.business_day(now)
    if day != current:
        raise settlement_service.DayInFuture(
            f"only the current business day ({current}) can be settled early, not {day}"
        )


async def _check_card_refund(session: AsyncSession, target: str, paid_by: str | None) -> None:
    if paid_by not in PAID_BY:
        raise InvalidRequest("a card refund is paid by cash or bank")
    card = await registry_repository.card_by_no(session, target)
    if card is None:
        raise NotFound(f"no card {target}")
    registry_service.require_action(card, CardAction.REFUND)


async def _check_topup_refund(session: AsyncSession, target: str) -> None:
    topup = await mobile_repository.topup_for_update(session, target)
    if topup is None:
        raise NotFound(f"no top-up {target}")
    await mobile_service.sync_delivery(session, topup)
    if topup.state is TopupState.DELIVERED:
        raise RefundAfterDelivery(
            f"top-up {target} is on card {topup.card_no} already: the money is on the card; "
            "refund the card at a service counter instead"
        )
    if topup.state is not TopupState.SUCCEEDED:
        raise NotRefundable(
            f"top-up {target} is {topup.state.value}: only a paid, undelivered top-up is refunded"
        )


async def ask(
    session: AsyncSession,
    principal: Principal,
    tools: Tools,
    kind: ApprovalKind,
    target: str,
    reason: str,
    *,
    paid_by: str | None = None,
) -> ApprovalRequest:
    """Ask for `kind` on `target`; it happens once another finance officer approves it."""
    person = await _person(session, principal, *ASKERS[kind])
    reason = _text(reason, "why")
    target = target.strip()
    if kind is ApprovalKind.WRITE_OFF:
        await _check_write_off(session, target)
        target = str(_tap_id(target))
    elif kind is ApprovalKind.BREAK_WRITE_OFF:
        await _check_break_write_off(session, target)
        target = str(_break_id(target))
    elif kind is ApprovalKind.EARLY_SETTLEMENT:
        await _check_early_settlement(session, target, tools)
    elif kind is ApprovalKind.CARD_REFUND:
        await _check_card_refund(session, target, paid_by)
    else:
        await _check_topup_refund(session, target)
    pending = await repository.pending_for(session, kind, target)
    if pending is not None:
        raise AlreadyRequested(f"{kind.value} of {target} already waits as request #{pending.id}")
    row = ApprovalRequest(
        kind=kind,
        target=target,
        paid_by=paid_by if kind is ApprovalKind.CARD_REFUND else None,
        reason=reason,
        state=ApprovalState.PENDING,
        requested_by=person,
        requested_at=utc_now(),
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:  # the same request by a concurrent caller that committed first
        raise AlreadyRequested(f"{kind.value} of {target} already waits for approval") from None
    return row


async def _locked(session: AsyncSession, request_id: int) -> ApprovalRequest:
    row = await repository.for_update(session, request_id)
    if row is None:
        raise NotFound(f"no approval request {request_id}")
    return row


def _decided_before(row: ApprovalRequest, person: str, state: ApprovalState) -> bool:
    """True if `person` already decided `row` this way (a double click); AlreadyDecided if it
    was decided otherwise; RequesterCannotDecide for the one who asked."""
    if row.requested_by == person:
        raise RequesterCannotDecide(
            f"request #{row.id} was asked by {person}: another finance officer decides it"
        )
    if row.state is ApprovalState.PENDING:
        return False
    if row.state is state and row.decided_by == person:
        return True
    raise AlreadyDecided(
        f"request #{row.id} was {row.state.value} by {row.decided_by} at "
        f"{row.decided_at:%Y-%m-%d %H:%M} UTC"
    )


async def approve(
    session: AsyncSession, principal: Principal, tools: Tools, request_id: int, note: str = ""
) -> Decided:
    """Approve and carry out a request, once: approving it again is a no-op for the officer
    who approved it and AlreadyDecided for anyone else. If carrying it out is refused (the
    record was released meanwhile, the card has uncleared taps), the error propagates and the
    caller's rollback leaves the request pending."""
    person = await _person(session, principal, Role.FINANCE)
    row = await _locked(session, request_id)
    if _decided_before(row, person, ApprovalState.APPROVED):
        return Decided(row, again=True)
    actor = f"finance:{person}"
    why = f"approval #{row.id} asked by {row.requested_by}: {row.reason}"[:REASON_LENGTH_MAX]
    settlement, outcome = await _carry_out(session, tools, row, actor, why)
    row.state = ApprovalState.APPROVED
    row.decided_by = person
    row.decided_at = utc_now()
    row.decision_note = note.strip()[:REASON_LENGTH_MAX] or None
    row.outcome = outcome[:OUTCOME_LENGTH_MAX]
    await session.flush()
    return Decided(row, settlement)


async def _carry_out(
    session: AsyncSession, tools: Tools, row: ApprovalRequest, actor: str, why: str
) -> tuple[settlement_service.Settlement | None, str]:
    """The existing service action of the request, on the caller's transaction."""
    if row.kind is ApprovalKind.WRITE_OFF:
        conn = await session.connection()
        await quarantine_service.write_off(conn, int(row.target), actor=actor, note=why)
        return None, f"tap record {row.target} written off"
    if row.kind is ApprovalKind.BREAK_WRITE_OFF:
        conn = await session.connection()
        await reconciliation_service.write_off(conn, int(row.target), actor=actor, note=why)
        return None, f"reconciliation break {row.target} written off"
    if row.kind is ApprovalKind.EARLY_SETTLEMENT:
        settlement = await settlement_service.settle_day(
            await session.connection(),
            _ledger(tools),
            _day(row.target),
            calendar=settlement_service.calendar_of(tools.settings),
            now=utc_now(),
            actor=actor,
            force=True,
            escrow_account=tools.settings.escrow_account,
        )
        net = sum(line.net_fen for line in settlement.lines)
        return settlement, f"business day {row.target} settled early: {net} fen to pay"
    if row.kind is ApprovalKind.CARD_REFUND:
        card, _ = await cards_service.refund_card(
            session, tools.ledger, row.target, actor, why[:200], row.paid_by or "cash"
        )
        return None, f"card {card.card_no} refunded ({row.paid_by})"
    return None, await _refund_topup(session, tools, row.target)


async def _refund_topup(session: AsyncSession, tools: Tools, topup_id: str) -> str:
    # As the direct path did: booked first, Stripe asked last, so a refusal there rolls all of
    # it back; a crash after it leaves charge.refunded to finish the booking.
    if tools.stripe_refund is None:
        raise NotNeeded("Stripe is not configured here: approve top-up refunds through the API")
    topup = await mobile_repository.topup_for_update(session, topup_id)
    if topup is None:
        raise NotFound(f"no top-up {topup_id}")
    await mobile_service.withdraw_undelivered(session, tools.ledger, topup, TopupState.REFUNDED)
    refund_id = await tools.stripe_refund(topup.payment_intent_id or "", f"refund-{topup_id}")
    return f"top-up {topup_id} refunded at Stripe ({refund_id})"


def _ledger(tools: Tools) -> LedgerPort:
    if tools.ledger is None:
        raise settlement_service.SettlementError("the ledger is not available")
    return tools.ledger


async def reject(
    session: AsyncSession, principal: Principal, request_id: int, note: str
) -> Decided:
    """Refuse a request with a reason; nothing is carried out."""
    person = await _person(session, principal, Role.FINANCE)
    note = _text(note, "why it is rejected")
    row = await _locked(session, request_id)
    if _decided_before(row, person, ApprovalState.REJECTED):
        return Decided(row, again=True)
    row.state = ApprovalState.REJECTED
    row.decided_by = person
    row.decided_at = utc_now()
    row.decision_note = note
    await session.flush()
    return Decided(row)


async def list_requests(
    session: AsyncSession,
    principal: Principal,
    *,
    state: ApprovalState | None = None,
    kind: ApprovalKind | None = None,
    target: str | None = None,
    limit: int = 100,
) -> list[ApprovalRequest]:
    """Requests, newest first (finance and admin)."""
    if not principal.has_role(Role.FINANCE, Role.ADMIN):
        raise Forbidden("this needs one of the roles: finance, admin")
    if not 1 <= limit <= PAGE_MAX:
        raise InvalidRequest(f"limit must be 1 .. {PAGE_MAX}")
    return await repository.requests(session, state=state, kind=kind, target=target, limit=limit)


async def get_request(
    session: AsyncSession, principal: Principal, request_id: int
) -> ApprovalRequest:
    if not principal.has_role(Role.FINANCE, Role.ADMIN):
        raise Forbidden("this needs one of the roles: finance, admin")
    row = await repository.by_id(session, request_id)
    if row is None:
        raise NotFound(f"no approval request {request_id}")
    return row


def write_settlement_files(
    decided: Decided, settings: Settings
) -> settlement_service.SettlementFiles | None:
    """After the commit: an approved early settlement's instruction files (rewriting them is
    harmless: they follow from the stored settlement)."""
    if decided.settlement is None:
        return None
    return settlement_service.write_files(
        decided.settlement,
        settlement_service.settlement_dir(settings),
        settlement_service.debtor_of(settings),
    )
