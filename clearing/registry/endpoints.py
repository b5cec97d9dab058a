"""Registry routes: participants, terminals and cards (their issue and reading; their life is
clearing/cards/endpoints.py). Thin: parse, call, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.convertors import StringConvertor, register_url_convertor

from clearing.auth.dependencies import PrincipalDep, TerminalIdPath
from clearing.auth.models import Role
from clearing.auth.service import Principal, require_role
from clearing.http.bodies import StrictJsonRoute
from clearing.http.deps import SessionDep, SettingsDep, ledger_of
from clearing.http.problems import PROBLEM_RESPONSES
from clearing.registry import service
from clearing.registry.models import Terminal
from clearing.registry.schemas import (
    CardIssue,
    CardIssueRun,
    CardOut,
    ParticipantCreate,
    ParticipantOut,
    ParticipantUpdate,
    TerminalCreate,
    TerminalOut,
    TerminalUpdate,
)

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", responses=PROBLEM_RESPONSES)

CodePath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,31}$")]
CardNoPath = Annotated[str, Path(pattern=r"^[0-9]{16}$", description="Card number, 16 digits")]


class CardNoConvertor(StringConvertor):
    """`{card_no:card_no}` matches 16 digits only, so /cards/issue-run is never read as a card
    number: a GET there is 405 (Allow: POST), not a 422 about a malformed card number."""

    regex = "[0-9]{16}"


register_url_convertor("card_no", CardNoConvertor())
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


def _admin(principal: Principal) -> None:
    require_role(principal, Role.ADMIN)


# -- participants ------------------------------------------------------------------------------


@router.post(
    "/participants",
    status_code=201,
    tags=["registry"],
    summary="Add a participant",
    description="Admin: register a bus operator, clinic, utility or fund with its commission (basis points) and bank account; its payable account is opened in the ledger. 409 if the code is taken.",
)
async def create_participant(
    body: ParticipantCreate, principal: PrincipalDep, session: SessionDep, settings: SettingsDep
) -> ParticipantOut:
    _admin(principal)
    created = await service.create_participant(
        session, body, escrow_account=settings.escrow_account
    )
    return ParticipantOut.model_validate(created)


@router.get(
    "/participants",
    tags=["registry"],
    summary="Participants (operators: their own)",
    description="Participants in code order, paged (limit, offset). Admin and finance see all; an operator sees only itself.",
)
async def list_participants(
    principal: PrincipalDep, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> list[ParticipantOut]:
    rows = await service.list_participants(session, principal, limit=limit, offset=offset)
    return [ParticipantOut.model_validate(row) for row in rows]


@router.get(
    "/participants/{code}",
    tags=["registry"],
    summary="One participant",
    description="A participant by code. An operator may read only itself (others are 404, their existence not disclosed).",
)
async def get_participant(
    code: CodePath, principal: PrincipalDep, session: SessionDep
) -> ParticipantOut:
    return ParticipantOut.model_validate(await service.get_participant(session, principal, code))


@router.patch(
    "/participants/{code}",
    tags=["registry"],
    summary="Change a participant",
    description="Admin: change name, commission, bank account, bank name or status. A field left out keeps its value; none may be null.",
)
async def update_participant(
    code: CodePath,
    body: ParticipantUpdate,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
) -> ParticipantOut:
    _admin(principal)
    changed = await service.update_participant(
        session, code, body, escrow_account=settings.escrow_account
    )
    return ParticipantOut.model_validate(changed)


# -- terminals ---------------------------------------------------------------------------------


async def _terminal_out(session: SessionDep, terminals: list[Terminal]) -> list[TerminalOut]:
    codes = await service.participant_codes(session, {t.participant_id for t in terminals})
    return [
        TerminalOut(
            terminal_id=t.terminal_id,
            participant=codes.get(t.participant_id, "?"),
            kind=t.kind,
            line=t.line,
            public_key=t.public_key,
            status=t.status,
            seq_high=t.seq_high,
            created_at=t.created_at,
        )
        for t in terminals
    ]


@router.post(
    "/terminals",
    status_code=201,
    tags=["registry"],
    summary="Register a terminal",
    description="Admin: register a terminal by its SAM number with its Ed25519 public key (it signs every request with the private key) and its owning participant.",
)
async def register_terminal(
    body: TerminalCreate, principal: PrincipalDep, session: SessionDep
) -> TerminalOut:
    _admin(principal)
    terminal = await service.register_terminal(session, body)
    return (await _terminal_out(session, [terminal]))[0]


@router.get(
    "/terminals",
    tags=["registry"],
    summary="Terminals (operators: their own)",
    description="Terminals, paged (limit, offset). An operator sees only its own.",
)
async def list_terminals(
    principal: PrincipalDep, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> list[TerminalOut]:
    rows = await service.list_terminals(session, principal, limit=limit, offset=offset)
    return await _terminal_out(session, rows)


@router.get(
    "/terminals/{terminal_id}",
    tags=["registry"],
    summary="One terminal",
    description="A terminal with its status, key and the highest journal serial received. An operator may read only its own.",
)
async def get_terminal(
    terminal_id: TerminalIdPath, principal: PrincipalDep, session: SessionDep
) -> TerminalOut:
    terminal = await service.get_terminal(session, principal, terminal_id)
    return (await _terminal_out(session, [terminal]))[0]


@router.patch(
    "/terminals/{terminal_id}",
    tags=["registry"],
    summary="Suspend, re-key, move",
    description="Admin: change a terminal's status (suspend, retire), its public key or its line. A field left out keeps its value; none may be null.",
)
async def update_terminal(
    terminal_id: TerminalIdPath, body: TerminalUpdate, principal: PrincipalDep, session: SessionDep
) -> TerminalOut:
    _admin(principal)
    terminal = await service.update_terminal(session, terminal_id, body)
    return (await _terminal_out(session, [terminal]))[0]


# -- cards -------------------------------------------------------------------------------------


@router.post(
    "/cards",
    status_code=201,
    tags=["cards"],
    summary="Issue a card (deposit + load)",
    description="Admin: issue one personalised card, taking its deposit and first load (cash at the counter or bank transfer) into the books in one transaction. 409 if the number is taken.",
)
async def issue_card(
    body: CardIssue, request: Request, principal: PrincipalDep, session: SessionDep
) -> CardOut:
    _admin(principal)
    card = await service.issue_card(session, ledger_of(request), body, principal.actor)
    return CardOut.model_validate(card)


@router.post(
    "/cards/issue-run",
    status_code=201,
    tags=["cards"],
    summary="Issue a run of cards at once",
    description="Admin: a personalisation run of up to 2,000 cards, issued all or nothing in one transaction.",
)
async def issue_cards(
    body: CardIssueRun, request: Request, principal: PrincipalDep, session: SessionDep
) -> list[CardOut]:
    _admin(principal)
    cards = await service.issue_cards(session, ledger_of(request), body.cards, principal.actor)
    return [CardOut.model_validate(card) for card in cards]
