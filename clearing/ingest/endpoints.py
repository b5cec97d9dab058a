"""Batch upload by terminals (signed), and stored batches and sequence gaps for staff."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from clearing.auth.dependencies import PrincipalDep, TerminalIdPath
from clearing.auth.models import Role
from clearing.auth.service import require_role
from clearing.errors import PayloadTooLarge
from clearing.http.bodies import StrictJsonRoute, checked_json
from clearing.http.deps import SessionDep
from clearing.http.problems import PROBLEM_RESPONSES
from clearing.ingest import service
from clearing.ingest.schemas import (
    RECORDS_PER_BATCH_MAX,
    BatchAck,
    BatchOut,
    BatchUpload,
    SequenceGapOut,
)
from clearing.registry import service as registry_service
from clearing.registry.signed import SigningTerminalDep

router = APIRouter(
    route_class=StrictJsonRoute, prefix="/v1", tags=["ingest"], responses=PROBLEM_RESPONSES
)


# Bodies parsed by the endpoint itself but described in the OpenAPI schema (clearing/api/app.py).
OPENAPI_MODELS = (BatchUpload,)


def parse_upload(body: bytes) -> BatchUpload:
    """The batch, parsed only after the signature verified: an unauthenticated caller learns
    nothing from validation errors (401 comes first)."""
    try:
        return BatchUpload.model_validate_json(checked_json(body))
    except ValidationError as error:
        if any(e["type"] == "too_long" and tuple(e["loc"]) == ("records",) for e in error.errors()):
            raise PayloadTooLarge(
                f"at most {RECORDS_PER_BATCH_MAX} records per batch: split it"
            ) from error
        errors = [
            {**item, "loc": ("body", *item["loc"])} for item in error.errors(include_url=False)
        ]
        raise RequestValidationError(errors) from error


@router.post(
    "/terminals/{terminal_id}/batches",
    summary="Upload a signed batch of journal records",
    description="Stored raw and committed before the answer; the same batch again is "
    "acknowledged as a duplicate and stored once; another body under the same batch_id is 409.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/BatchUpload"}}
            },
        }
    },
)
async def upload_batch(
    terminal_id: TerminalIdPath,
    request: Request,
    terminal: SigningTerminalDep,
    session: SessionDep,
) -> BatchAck:
    body = await request.body()
    upload = parse_upload(body)
    stored = await service.store_batch(
        session, terminal_id=terminal.terminal_id, body=body, upload=upload
    )
    # Durable before the acknowledgement, whatever the dependency does afterwards.
    await session.commit()
    return BatchAck(
        batch_id=stored.batch_id,
        records=stored.records,
        duplicate=stored.duplicate,
        received_at=stored.received_at,
        sequence_gaps=[
            SequenceGapOut(from_seq=g.from_seq, to_seq=g.to_seq) for g in stored.sequence_gaps
        ],
    )


@router.get(
    "/terminals/{terminal_id}/sequence-gaps",
    summary="Open gaps in a terminal's serials",
    description="Ranges of journal serials not received yet from this terminal: records still to upload, or lost. An operator may read only its own terminals.",
)
async def sequence_gaps(
    terminal_id: TerminalIdPath, principal: PrincipalDep, session: SessionDep
) -> list[SequenceGapOut]:
    await registry_service.get_terminal(session, principal, terminal_id)
    gaps = await service.sequence_gaps(session, terminal_id)
    return [SequenceGapOut(from_seq=g.from_seq, to_seq=g.to_seq) for g in gaps]


@router.get(
    "/batches",
    summary="Stored batches, newest first (operators: their terminals)",
    description="Batches as received (without the raw body): id, record count, amount total, body hash. Filter by terminal; an operator sees only its own terminals.",
)
async def list_batches(
    principal: PrincipalDep,
    session: SessionDep,
    terminal_id: Annotated[str | None, Query(pattern=r"^[0-9A-F]{12}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[BatchOut]:
    require_role(principal, Role.ADMIN, Role.FINANCE, Role.OPERATOR)
    terminal_ids: list[str] | None = None
    if terminal_id is not None:
        await registry_service.get_terminal(session, principal, terminal_id)
        terminal_ids = [terminal_id]
    elif principal.role is Role.OPERATOR:
        own = await registry_service.list_terminals(session, principal, limit=500, offset=0)
        terminal_ids = [terminal.terminal_id for terminal in own]
    batches = await service.list_batches(
        session, terminal_ids=terminal_ids, limit=limit, offset=offset
    )
    return [BatchOut.model_validate(batch) for batch in batches]
