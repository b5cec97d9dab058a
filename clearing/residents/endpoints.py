"""Residents' routes: sign-up, login, refresh, logout, who am I, and the resident's own cards.
Thin: parse, call the service, answer.

A failure that must be remembered although the request fails (a wrong password, a wrong card
proof, a reused refresh token and the revocation it causes) is committed here before the error
leaves: the session dependency would roll it back otherwise.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from clearing.auth.dependencies import PrincipalDep
from clearing.auth.models import Role
from clearing.http.bodies import StrictJsonRoute
from clearing.http.deps import SessionDep, SettingsDep, ledger_of
from clearing.http.problems import PROBLEM_RESPONSES, TOO_MANY_RESPONSES
from clearing.residents import repository, service, signin
from clearing.residents.dependencies import CurrentResident
from clearing.residents.errors import CardProofWrong, LoginFailed, RefreshReused
from clearing.residents.schemas import (
    CardDetailOut,
    CardLinkRequest,
    HistoryItemOut,
    LinkedCardOut,
    LogIn,
    MeOut,
    PendingLoadOut,
    Refresh,
    ResidentOut,
    SignUp,
    TokenPairOut,
)
from clearing.residents.signin import TokenPair

router = APIRouter(
    route_class=StrictJsonRoute,
    prefix="/v1",
    tags=["residents"],
    responses={**PROBLEM_RESPONSES},
)

CardNoPath = Annotated[str, Path(pattern=r"^[0-9]{16}$", description="Card number, 16 digits")]
Limit = Annotated[int, Query(ge=1, le=repository.HISTORY_PAGE_MAX)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


# -- accounts and sign-ins ---------------------------------------------------------------------


@router.post(
    "/residents",
    status_code=201,
    summary="Sign up",
    description="A new resident account with an email address or a mobile number as its login "
    "(normalised: one account per person whatever the case or the form of the number) and a "
    "password (10 to 128 characters, not the login, not a well-known one). 409 if the login "
    "has an account. Then log in (POST /v1/auth/login).",
)
async def sign_up(body: SignUp, session: SessionDep, settings: SettingsDep) -> ResidentOut:
    resident = await signin.sign_up(session, settings, body.login, body.password, body.display_name)
    return ResidentOut.model_validate(resident)


@router.post(
    "/auth/login",
    summary="Log in (a resident)",
    description="An access token (minutes) and a refresh token (weeks, one use). A wrong login "
    "or password is 401; after too many wrong passwords for one account, 429 with Retry-After.",
    responses=TOO_MANY_RESPONSES,
)
async def log_in(body: LogIn, session: SessionDep, settings: SettingsDep) -> TokenPairOut:
    try:
        pair = await signin.log_in(session, settings, body.login, body.password)
    except LoginFailed:
        await session.commit()  # the wrong password counts towards the limit
        raise
    return _out(pair, settings.resident_access_token_ttl_s)


@router.post(
    "/auth/refresh",
    summary="Trade a refresh token for a new pair",
    description="The refresh token is used up; the answer has the next one. A refresh token "
    "used twice ends every session of that sign-in (401 refresh_token_reused): log in again.",
)
async def refresh(body: Refresh, session: SessionDep, settings: SettingsDep) -> TokenPairOut:
    try:
        pair = await signin.refresh(session, settings, body.refresh_token)
    except RefreshReused:
        await session.commit()  # the family's revocation stands
        raise
    return _out(pair, settings.resident_access_token_ttl_s)


@router.post(
    "/auth/logout",
    status_code=204,
    summary="Log out",
    description="Revokes this access token and its sign-in's refresh tokens; with "
    "everywhere=true, every sign-in of the resident.",
)
async def log_out(
    resident: CurrentResident, session: SessionDep, everywhere: bool = False
) -> Response:
    await signin.log_out(session, resident.resident_id, resident.token_pk, everywhere=everywhere)
    return Response(status_code=204)


@router.get(
    "/me",
    response_model_exclude_unset=True,  # staff see {role, subject} as before residents came
    tags=["auth"],
    summary="The caller's role and subject (and a resident's account)",
    description="Who the bearer token names: its role (admin, finance, operator, resident, "
    "planner) and subject (a participant code or a resident's id); for a resident with an "
    "account, the account too. A client checks its token with it.",
)
async def me(principal: PrincipalDep, session: SessionDep) -> MeOut:
    me = MeOut(role=principal.role, subject=principal.subject)
    if principal.role is Role.RESIDENT and principal.subject:
        row = await service.account_of(session, principal.subject)
        if row is not None:
            me.resident = ResidentOut.model_validate(row)
    return me


# -- the resident's cards ----------------------------------------------------------------------


@router.get(
    "/me/cards",
    summary="My linked cards",
    description="The cards this resident has linked, with the money in the books on each "
    "(card:<no>) and paid but not yet on the card (card-pending:<no>).",
)
async def my_cards(
    resident: CurrentResident, request: Request, session: SessionDep
) -> list[LinkedCardOut]:
    views = await service.my_cards(session, ledger_of(request), resident.resident_id)
    return [_linked(view.link, view.card, view.money) for view in views]


@router.post(
    "/me/cards",
    status_code=201,
    summary="Link a card",
    description="Link a card by its number and a proof that you hold it: its balance in fen "
    "after its last cleared tap (kind balance), or the amount in fen of its last load "
    "(kind last_load). A wrong proof is 422 and counts: 5 within an hour, per resident and "
    "per card, make you wait (429, Retry-After). A lost, blocked, replaced or refunded card "
    "cannot be linked (409); a card linked by another account neither (409). 200 if you had "
    "linked it already.",
    responses={
        **TOO_MANY_RESPONSES,
        200: {"model": LinkedCardOut, "description": "Already linked"},
    },
)
async def link_card(
    body: CardLinkRequest,
    resident: CurrentResident,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
) -> LinkedCardOut:
    ledger = ledger_of(request)
    try:
        link, card, created = await service.link_card(
            session,
            settings,
            ledger,
            resident.resident_id,
            body.card_no,
            (body.proof.kind, body.proof.amount_fen),
            body.label,
        )
    except CardProofWrong:
        await session.commit()  # the wrong try counts towards the limits
        raise
    if not created:
        response.status_code = 200
    money = (await service.card_money(session, ledger, [card.card_no]))[card.card_no]
    return _linked(link, card, money)


@router.get(
    "/me/cards/{card_no}",
    summary="One of my cards",
    description="A linked card: its state, the money in the books and pending, the loads "
    "waiting on the action list, and the balance it reported at its last cleared tap. "
    "404 for a card you have not linked.",
)
async def my_card(
    card_no: CardNoPath, resident: CurrentResident, request: Request, session: SessionDep
) -> CardDetailOut:
    view = await service.my_card(session, ledger_of(request), resident.resident_id, card_no)
    base = _linked(view.link, view.card, view.money)
    return CardDetailOut(
        **base.model_dump(),
        replaced_by=view.card.replaced_by,
        pending_loads=[PendingLoadOut(**_fields(load)) for load in view.pending_loads],
        last_reported_balance_fen=None
        if view.last_tap is None
        else view.last_tap.balance_after_fen,
        last_tap_at=None if view.last_tap is None else view.last_tap.occurred_at,
    )


@router.delete(
    "/me/cards/{card_no}",
    status_code=204,
    summary="Unlink a card",
    description="The card leaves this account (its money stays on the card). 404 for a card "
    "you have not linked.",
)
async def unlink_card(
    card_no: CardNoPath, resident: CurrentResident, session: SessionDep
) -> Response:
    await service.unlink_card(session, resident.resident_id, card_no)
    return Response(status_code=204)


@router.get(
    "/me/cards/{card_no}/history",
    summary="My card's cleared taps and loads",
    description="What clearing has cleared for this card, newest first (by the card's own "
    "counter), paged with limit and offset. Taps not uploaded or not cleared yet are not here. "
    "404 for a card you have not linked.",
)
async def my_card_history(
    card_no: CardNoPath,
    resident: CurrentResident,
    session: SessionDep,
    limit: Limit = 20,
    offset: Offset = 0,
) -> list[HistoryItemOut]:
    rows = await service.my_card_history(
        session, resident.resident_id, card_no, limit=limit, offset=offset
    )
    return [HistoryItemOut(**_fields(row)) for row in rows]


def _fields(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__slots__}


def _linked(link: Any, card: Any, money: service.CardMoney) -> LinkedCardOut:
    return LinkedCardOut(
        card_no=card.card_no,
        card_type=card.card_type,
        status=card.status,
        label=link.label,
        linked_at=link.linked_at,
        balance_fen=money.balance_fen,
        pending_fen=money.pending_fen,
    )


def _out(pair: TokenPair, ttl_s: int) -> TokenPairOut:
    return TokenPairOut(
        access_token=pair.access_token,
        expires_in=ttl_s,
        access_expires_at=pair.access_expires_at,
        refresh_token=pair.refresh_token,
        refresh_expires_at=pair.refresh_expires_at,
        resident_id=pair.resident_id,
    )
