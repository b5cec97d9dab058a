"""Quarantine endpoints for finance staff: list, inspect, release, write off (all audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from clearing.auth.dependencies import PrincipalDep
from clearing.auth.models import Role
from clearing.auth.service import require_role
from clearing.engine.reasons import QuarantineReason
from clearing.errors import SecondPersonRequired
from clearing.http.bodies import StrictJsonRoute
from clearing.http.deps import SessionDep
from clearing.http.problems import PROBLEM_RESPONSES
from clearing.quarantine import service
from clearing.quarantine.schemas import ReasonCountOut, ReleaseIn, WriteOffIn
from clearing.quarantine.service import QuarantinedRecord, RecordDetail

router = APIRouter(
    route_class=StrictJsonRoute,
    prefix="/v1/quarantine",
    tags=["quarantine"],
    responses=PROBLEM_RESPONSES,
)
TapId = Annotated[int, Path(ge=1, le=2**62, description="Tap record id")]


@router.get(
    "",
    response_model=list[QuarantinedRecord],
    summary="Quarantined records (finance)",
    description="Records the clearing engine held back instead of posting (bad TAC, unknown or "
    "denied card, broken balance chain, ...), oldest first, paged by id (`after_id`, `limit`), "
    "optionally for one reason or terminal. Finance and admin.",
)
async def list_quarantined(
    session: SessionDep,
    principal: PrincipalDep,
    reason: QuarantineReason | None = None,
    terminal_id: Annotated[str | None, Query(pattern=r"^[0-9A-F]{12}$")] = None,
    after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=service.PAGE_MAX)] = 100,
) -> list[QuarantinedRecord]:
    require_role(principal, Role.FINANCE, Role.ADMIN)
    conn = await session.connection()
    rows = await service.list_quarantined(
        conn, reason=reason, terminal_id=terminal_id, after_id=after_id, limit=limit
    )
    return rows


@router.get(
    "/reasons",
    response_model=list[ReasonCountOut],
    summary="Quarantined records per reason (finance)",
    description="How many records are held for each quarantine reason: where finance staff "
    "start their day. Finance and admin.",
)
async def reasons(session: SessionDep, principal: PrincipalDep) -> list[ReasonCountOut]:
    require_role(principal, Role.FINANCE, Role.ADMIN)
    counts = await service.counts_by_reason(await session.connection())
    return [ReasonCountOut(reason=k, records=v) for k, v in counts.items()]


@router.get(
    "/{tap_id}",
    response_model=RecordDetail,
    summary="One quarantined record and its audit trail (finance)",
    description="The record as the terminal sent it, every action taken on it (who, when, why) "
    "and its disposition (released, written off, or still held). Finance and admin; 404 if the "
    "id names no record.",
)
async def show(
    tap_id: TapId,
    session: SessionDep,
    principal: PrincipalDep,
) -> RecordDetail:
    require_role(principal, Role.FINANCE, Role.ADMIN)
    return await service.show(await session.connection(), tap_id)


@router.post(
    "/{tap_id}/release",
    response_model=RecordDetail,
    summary="Release a record to clear again (finance)",
    description="Finance: send a held record back to clearing once its cause is fixed, with a "
    "note saying what was fixed; `override` accepts a soft reason (balance chain broken, grey "
    "unresolved) on re-clear. Audited; 409 if the record is not held.",
)
async def release(
    tap_id: TapId, body: ReleaseIn, session: SessionDep, principal: PrincipalDep
) -> RecordDetail:
    require_role(principal, Role.FINANCE)
    conn = await session.connection()
    await service.release(
        conn, tap_id, actor=principal.actor, note=body.note, override=body.override
    )
    return await show(tap_id, session, principal)


@router.post(
    "/{tap_id}/write-off",
    response_model=RecordDetail,
    summary="Write a record off: ask a second officer (finance)",
    description="A write-off needs a second finance officer: this answers 409 "
    'second_person_required; ask with POST /v1/approvals {"kind": "write_off", '
    '"target": "<tap id>", "reason": ...} and another officer approves it.',
)
async def write_off(
    tap_id: TapId, body: WriteOffIn, session: SessionDep, principal: PrincipalDep
) -> RecordDetail:
    require_role(principal, Role.FINANCE)
    raise SecondPersonRequired(
        f"a write-off needs a second finance officer: ask with POST /v1/approvals "
        f'{{"kind": "write_off", "target": "{tap_id}", "reason": ...}}'
    )
