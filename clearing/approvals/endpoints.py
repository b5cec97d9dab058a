"""Approval endpoints (finance): ask, list, show, approve, reject. Thin: parse, call, answer.

Approving an early settlement commits before its instruction files are written, as the
settlement endpoint does: the files follow from what is stored."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.approvals import service
from clearing.approvals.models import ApprovalKind, ApprovalState
from clearing.approvals.schemas import ApprovalAsk, ApprovalDecision, ApprovalOut, ApprovalRejection
from clearing.auth.dependencies import PrincipalDep
from clearing.http.bodies import StrictJsonRoute
from clearing.http.deps import SessionDep, SettingsDep, ledger_of
from clearing.http.problems import PROBLEM_RESPONSES
from clearing.mobile.endpoints import gateway_of
from clearing.settings import Settings

router = APIRouter(
    route_class=StrictJsonRoute,
    prefix="/v1/approvals",
    tags=["approvals"],
    responses=PROBLEM_RESPONSES,
)
RequestId = Annotated[int, Path(ge=1, le=2**62, description="Approval request id")]


def tools_of(request: Request, settings: Settings) -> service.Tools:
    return service.Tools(
        ledger_of(request),
        settings,
        lambda intent, key: gateway_of(request, settings).refund(intent, key),
    )


def approval_out(decided: service.Decided | None, row: object, files: list[str]) -> ApprovalOut:
    out = ApprovalOut.model_validate(decided.request if decided else row)
    return out.model_copy(update={"files": files})


@router.post(
    "",
    status_code=201,
    response_model=ApprovalOut,
    summary="Ask for a write-off, a refund or an early settlement (finance)",
    description="The request waits until another finance officer approves it (and it is "
    "carried out then) or rejects it. Write-offs (of a quarantined record, write_off, or of a "
    "reconciliation break, break_write_off) and early settlements are asked by finance, "
    "refunds by finance or admin; the caller must be a named staff account. 409 if the same "
    "thing already waits or the target is not in a state for it.",
)
async def ask(
    body: ApprovalAsk,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> ApprovalOut:
    row = await service.ask(
        session,
        principal,
        tools_of(request, settings),
        body.kind,
        body.target,
        body.reason,
        paid_by=body.paid_by,
    )
    return approval_out(None, row, [])


@router.get(
    "",
    response_model=list[ApprovalOut],
    summary="Approval requests, newest first (finance, admin)",
    description="Every request with who asked, when and why, and who decided it, when, why and "
    "what was done; optionally only one state or kind. At most `limit` (200) of them.",
)
async def list_requests(
    session: SessionDep,
    principal: PrincipalDep,
    state: ApprovalState | None = None,
    kind: ApprovalKind | None = None,
    limit: Annotated[int, Query(ge=1, le=service.PAGE_MAX)] = 100,
) -> list[ApprovalOut]:
    rows = await service.list_requests(session, principal, state=state, kind=kind, limit=limit)
    return [approval_out(None, row, []) for row in rows]


@router.get(
    "/{request_id}",
    response_model=ApprovalOut,
    summary="One approval request",
    description="A request and its audit trail (finance, admin); 404 if the id names none.",
)
async def show(request_id: RequestId, session: SessionDep, principal: PrincipalDep) -> ApprovalOut:
    return approval_out(None, await service.get_request(session, principal, request_id), [])


async def _commit(session: AsyncSession) -> None:
    await session.commit()


@router.post(
    "/{request_id}/approve",
    response_model=ApprovalOut,
    summary="Approve and carry out a request (a second finance officer)",
    description="Carried out once, in the same transaction as the approval. The one who asked "
    "cannot approve (403 requester_cannot_decide); approving again by the same officer answers "
    "the same request and does nothing more; a request decided otherwise is 409.",
)
async def approve(
    request_id: RequestId,
    body: ApprovalDecision,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> ApprovalOut:
    decided = await service.approve(
        session, principal, tools_of(request, settings), request_id, body.note
    )
    await _commit(session)  # durable before the settlement's files are written
    files = service.write_settlement_files(decided, settings)
    names = [] if files is None else [p.name for p in (files.csv, files.xml, files.claims) if p]
    return approval_out(decided, None, names)


@router.post(
    "/{request_id}/reject",
    response_model=ApprovalOut,
    summary="Reject a request with a reason (a second finance officer)",
    description="Nothing is carried out; the reason is kept. The one who asked cannot reject "
    "(403 requester_cannot_decide); a request decided otherwise is 409.",
)
async def reject(
    request_id: RequestId, body: ApprovalRejection, session: SessionDep, principal: PrincipalDep
) -> ApprovalOut:
    decided = await service.reject(session, principal, request_id, body.note)
    return approval_out(decided, None, [])
