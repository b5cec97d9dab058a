"""Card workflow routes: the cards a caller may read (a resident: the ones linked to them),
report lost, block, unblock, replace, refund, a replacement's progress,
and finance's confirmation of a card reconciliation suspects of being cloned. Thin: parse, call,
answer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from clearing.auth.dependencies import PrincipalDep
from clearing.auth.models import Role
from clearing.auth.service import Principal, require_role
from clearing.cards import service as cards
from clearing.errors import NotFound, SecondPersonRequired
from clearing.http.bodies import StrictJsonRoute
from clearing.http.deps import SessionDep, ledger_of
from clearing.http.problems import PROBLEM_RESPONSES
from clearing.registry.endpoints import CardNoPath, Limit, Offset
from clearing.registry.models import Card
from clearing.registry.schemas import (
    CardDetail,
    CardEventOut,
    CardOut,
    CardReason,
    CardRefund,
    CardReplace,
    ReplacementOut,
)
from reconciliation import service as reconciliation
from reconciliation.endpoints import BreakId, DeniedOut, NoteIn, detail_out

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", responses=PROBLEM_RESPONSES)


class CardChange(BaseModel):
    card: CardOut
    deny_list_version: int


def _admin(principal: Principal) -> None:
    require_role(principal, Role.ADMIN)


def _changed(card: Card, deny_list_version: int) -> CardChange:
    return CardChange(card=CardOut.model_validate(card), deny_list_version=deny_list_version)


@router.get(
    "/cards",
    tags=["cards"],
    summary="Cards (residents: the ones linked to them)",
    description="Cards, paged (limit, offset). A resident sees only the cards linked to their "
    "account (POST /v1/me/cards).",
)
async def list_cards(
    principal: PrincipalDep, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> list[CardOut]:
    rows = await cards.list_cards(session, principal, limit=limit, offset=offset)
    return [CardOut.model_validate(row) for row in rows]


@router.get(
    "/cards/{card_no:card_no}",
    tags=["cards"],
    summary="A card, its balance and its history",
    description="A card, the ledger balance of card:<no> (null without a ledger) and its life "
    "events. A resident may read only the cards linked to their account.",
)
async def get_card(
    card_no: CardNoPath, request: Request, principal: PrincipalDep, session: SessionDep
) -> CardDetail:
    view = await cards.get_card(session, principal, card_no, ledger_of(request))
    return CardDetail(
        card=CardOut.model_validate(view.card),
        balance_fen=view.balance_fen,
        events=[CardEventOut.model_validate(event) for event in view.events],
    )


@router.post(
    "/cards/{card_no:card_no}/report-lost",
    tags=["cards"],
    summary="Report a card lost",
    description="The holder (resident) or admin reports a card lost: it goes on the deny list at once; the answer names the deny-list version terminals must reach.",
)
async def report_lost(
    card_no: CardNoPath, body: CardReason, principal: PrincipalDep, session: SessionDep
) -> CardChange:
    card, version = await cards.report_lost(session, principal, card_no, body.reason)
    return _changed(card, version)


@router.post(
    "/cards/{card_no:card_no}/block",
    tags=["cards"],
    summary="Block a card (deny list)",
    description="Admin: block a card (fraud, damage); terminals refuse it once they hold the returned deny-list version.",
)
async def block_card(
    card_no: CardNoPath, body: CardReason, principal: PrincipalDep, session: SessionDep
) -> CardChange:
    _admin(principal)
    card, version = await cards.block_card(session, card_no, principal.actor, body.reason)
    return _changed(card, version)


@router.post(
    "/cards/{card_no:card_no}/unblock",
    tags=["cards"],
    summary="Unblock a blocked or found card",
    description="Admin: take a blocked or lost-then-found card off the deny list.",
)
async def unblock_card(
    card_no: CardNoPath, body: CardReason, principal: PrincipalDep, session: SessionDep
) -> CardChange:
    _admin(principal)
    card, version = await cards.unblock_card(session, card_no, principal.actor, body.reason)
    return _changed(card, version)


@router.post(
    "/cards/{card_no:card_no}/replace",
    tags=["cards"],
    summary="Replace a card",
    description="Admin: replace a lost or damaged card by a new one; the old card is denied and its balance moves to the new card once no more taps of the old one can arrive (see its replacement). 409 if the new number is taken (this card's own included) or the card cannot be replaced in its status.",
)
async def replace_card(
    card_no: CardNoPath,
    body: CardReplace,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
) -> ReplacementOut:
    _admin(principal)
    replacement = await cards.replace_card(
        session, ledger_of(request), card_no, body.new_card_no, principal.actor, body.reason
    )
    return ReplacementOut.model_validate(replacement)


@router.get(
    "/cards/{card_no:card_no}/replacement",
    tags=["cards"],
    summary="A replacement's progress",
    description="The replacement of this card: requested, or moved with the amount moved and "
    "the load that puts it on the new card; null while the card was never replaced (every card "
    "has this resource, from its issue on). 404 if there is no such card. A resident may read "
    "only their own.",
)
async def get_replacement(
    card_no: CardNoPath, principal: PrincipalDep, session: SessionDep
) -> ReplacementOut | None:
    await cards.visible_card(session, principal, card_no)
    try:
        replacement = await cards.replacement_of(session, card_no)
    except NotFound:  # the card exists (above): it has no replacement yet
        return None
    return ReplacementOut.model_validate(replacement)


@router.post(
    "/cards/{card_no:card_no}/refund",
    tags=["cards"],
    summary="Refund a returned card: ask a second officer",
    description="A card refund needs a second person: this answers 409 second_person_required; "
    "ask with POST /v1/approvals (kind card_refund) and a finance officer approves it.",
)
async def refund_card(
    card_no: CardNoPath,
    body: CardRefund,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
) -> CardChange:
    _admin(principal)
    await cards.visible_card(session, principal, card_no)
    raise SecondPersonRequired(
        "a card refund needs a second person: ask with POST /v1/approvals "
        f'{{"kind": "card_refund", "target": "{card_no}", "paid_by": "{body.paid_by}", '
        '"reason": ...}'
    )


@router.post(
    "/reconciliation/breaks/{break_id}/deny-card",
    tags=["reconciliation"],
    response_model=DeniedOut,
    summary="Deny a suspected clone (finance)",
    description="Finance confirms a card_clone_suspected break: the card is blocked and goes on "
    "the deny list (terminals refuse it once they hold the returned version); the break's history "
    "says so and it stays open until resolved. 409 if the break is closed or of another kind.",
)
async def deny_suspected_clone(
    break_id: BreakId, body: NoteIn, principal: PrincipalDep, session: SessionDep
) -> DeniedOut:
    require_role(principal, Role.FINANCE)

    async def deny(card_no: str, reason: str) -> int:
        _, version = await cards.block_card(session, card_no, principal.actor, reason)
        return version

    view, version = await reconciliation.confirm_clone(
        await session.connection(), break_id, deny, actor=principal.actor, note=body.note
    )
    return DeniedOut(**detail_out(view).model_dump(), deny_list_version=version)
