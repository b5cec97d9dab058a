"""The resident's cards: the list, one card (balances, pending loads, history by day), linking
and unlinking, reporting a card lost. Each page reads and acts through clearing/residents and
clearing/cards; a card not linked to this resident is the 404 page, whatever its number.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import date
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from clearing.cards import service as cards_service
from clearing.errors import NotFound
from clearing.http.deps import SessionDep, SettingsDep, ledger_of
from clearing.registry.models import CardStatus
from clearing.registry.service import CardStateConflict
from clearing.residents import service as residents_service
from clearing.residents.errors import (
    CardLinkedElsewhere,
    CardLinkLocked,
    CardNotLinkable,
    CardProofWrong,
)
from clearing.residents.repository import ClearedTapRow
from clearing.residents.rules import ProofKind
from clearing.residents.service import CardDetailView
from clearing.web.forms import Field, InputKind, bind, blank
from clearing.web.guard import submitted
from clearing.web.i18n import N_
from clearing.web.network import names
from clearing.web.pages import redirect, render
from clearing.web.session import PageNotFound, ResidentVisitor

router = APIRouter()
HISTORY_ROWS = 50
CardNoPath = Annotated[str, Path(pattern=r"^[0-9]{16}$")]

# The notices a page shows after a redirect (?done=…): a closed set, never text from the URL.
NOTICES = {
    "linked": N_("The card is linked to your account."),
    "unlinked": N_("The card is no longer linked to your account."),
    "lost": N_(
        "The card is reported lost: terminals refuse it from their next list update. Its "
        "balance is kept for the replacement card: ask for one at a service counter."
    ),
}
CARD_STATES = {
    CardStatus.ACTIVE: N_("In use"),
    CardStatus.LOST: N_("Reported lost"),
    CardStatus.BLOCKED: N_("Blocked"),
    CardStatus.REPLACED: N_("Replaced"),
    CardStatus.REFUNDED: N_("Refunded"),
}
PROOFS = (
    (ProofKind.BALANCE.value, N_("The balance after its last tap")),
    (ProofKind.LAST_LOAD.value, N_("The amount of its last load")),
)
LINK_FIELDS = (
    Field(
        "card_no",
        N_("Card number"),
        InputKind.NUMBER,
        length_max=16,
        hint=N_("The 16 digits printed on the card."),
        autocomplete="off",
    ),
    Field(
        "proof_kind",
        N_("What you can tell us about the card"),
        InputKind.CHOICE,
        choices=PROOFS,
        hint=N_("Shown by the validator or kiosk, or on the receipt."),
    ),
    Field("proof_amount", N_("Amount (yuan)"), InputKind.AMOUNT, length_max=12),
    Field("label", N_("Whose card (optional)"), required=False, length_max=40),
)
LOST_FIELDS = (
    Field(
        "reason",
        N_("What happened (optional)"),
        required=False,
        length_max=200,
        hint=N_("For example: lost on line 3 this morning."),
    ),
)


def notice(done: str | None) -> str | None:
    return NOTICES.get(done or "")


@router.get("/cards", name="cards")
async def cards_page(
    request: Request, visitor: ResidentVisitor, session: SessionDep, done: str | None = None
) -> Response:
    views = await residents_service.my_cards(session, ledger_of(request), visitor.resident_id or "")
    return render(request, "cards.html", cards=views, states=CARD_STATES, notice=notice(done))


@router.get("/cards/link", name="link_card")
async def link_page(request: Request, visitor: ResidentVisitor) -> Response:
    return render(request, "link.html", form=blank(*LINK_FIELDS, proof_kind="balance"))


@router.post("/cards/link")
async def link_submit(
    request: Request, visitor: ResidentVisitor, session: SessionDep, settings: SettingsDep
) -> Response:
    form = bind(LINK_FIELDS, submitted(request))
    if form.valid and len(form.text("card_no")) != 16:
        form.refuse("card_no", N_("A card number has 16 digits."))
    if form.valid:
        try:
            await residents_service.link_card(
                session,
                settings,
                ledger_of(request),
                visitor.resident_id or "",
                form.text("card_no"),
                (ProofKind(form.text("proof_kind")), form.amount_fen("proof_amount")),
                form.text("label") or None,
            )
        except CardProofWrong:  # returned, not raised: the wrong try is committed and counts
            form.refuse(
                "proof_amount",
                N_(
                    "This card number and amount do not match. Taps of the last hours may not "
                    "be known yet."
                ),
            )
        except CardLinkLocked as error:
            form.refuse(
                None,
                N_("Too many wrong tries. Try again in %(minutes)s minutes."),
                minutes=max(1, -(-error.retry_after_s // 60)),
            )
        except CardNotLinkable:
            form.refuse(
                "card_no",
                N_("This card is lost, blocked or replaced: it cannot be linked."),
            )
        except CardLinkedElsewhere:
            form.refuse(
                "card_no",
                N_(
                    "This card is linked to another account. If it is yours now, ask at a "
                    "service counter."
                ),
            )
        else:
            return redirect(request, "cards", _query={"done": "linked"})
    return render(request, "link.html", 422, form=form)


def _by_day(taps: list[ClearedTapRow], zone: ZoneInfo) -> OrderedDict[date, list[dict]]:
    """The history grouped by the day it happened (the city's day), newest first, with the
    names of the line and the stop from the fare feed."""
    feed = names()
    days: OrderedDict[date, list[dict]] = OrderedDict()
    for tap in taps:
        day = tap.occurred_at.astimezone(zone).date()
        days.setdefault(day, []).append(
            {
                "tap": tap,
                "route": feed.route(tap.route_id),
                "stop": feed.stop(tap.stop_id),
                "signed_fen": tap.balance_after_fen - tap.balance_before_fen,
            }
        )
    return days


@router.get("/cards/{card_no}", name="card")
async def card_page(
    request: Request,
    card_no: CardNoPath,
    visitor: ResidentVisitor,
    session: SessionDep,
    settings: SettingsDep,
    done: str | None = None,
) -> Response:
    resident_id = visitor.resident_id or ""
    view = await _my_card(request, session, resident_id, card_no)
    taps = await residents_service.my_card_history(
        session, resident_id, card_no, limit=HISTORY_ROWS, offset=0
    )
    days = _by_day(taps, ZoneInfo(settings.business_time_zone))
    return render(
        request,
        "card.html",
        view=view,
        days=days,
        states=CARD_STATES,
        active=view.card.status is CardStatus.ACTIVE,
        notice=notice(done),
    )


@router.post("/cards/{card_no}/unlink", name="unlink_card")
async def unlink_submit(
    request: Request, card_no: CardNoPath, visitor: ResidentVisitor, session: SessionDep
) -> Response:
    try:
        await residents_service.unlink_card(session, visitor.resident_id or "", card_no)
    except NotFound:
        raise PageNotFound() from None
    return redirect(request, "cards", _query={"done": "unlinked"})


@router.get("/cards/{card_no}/lost", name="report_lost")
async def lost_page(
    request: Request, card_no: CardNoPath, visitor: ResidentVisitor, session: SessionDep
) -> Response:
    view = await _my_card(request, session, visitor.resident_id or "", card_no)
    return render(request, "lost.html", view=view, states=CARD_STATES, form=blank(*LOST_FIELDS))


@router.post("/cards/{card_no}/lost")
async def lost_submit(
    request: Request, card_no: CardNoPath, visitor: ResidentVisitor, session: SessionDep
) -> Response:
    view = await _my_card(request, session, visitor.resident_id or "", card_no)
    form = bind(LOST_FIELDS, submitted(request))
    if form.valid:
        try:
            await cards_service.report_lost(
                session,
                visitor.principal,
                card_no,
                form.text("reason") or "reported lost by the holder on the web",
            )
        except CardStateConflict:
            form.refuse(None, N_("This card is no longer in use: it cannot be reported lost."))
        else:
            return redirect(request, "card", card_no=card_no, _query={"done": "lost"})
    return render(request, "lost.html", 422, view=view, states=CARD_STATES, form=form)


async def _my_card(
    request: Request, session: AsyncSession, resident_id: str, card_no: str
) -> CardDetailView:
    try:
        return await residents_service.my_card(session, ledger_of(request), resident_id, card_no)
    except NotFound:
        raise PageNotFound() from None
