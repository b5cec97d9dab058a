"""`POST /v1/terminals/{terminal_id}/clinic/splits`: the clinic terminal asks how a visit's bill
splits between the insurance fund and the patient (terminal-signed like every terminal call)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from clearing.clinic import service
from clearing.clinic.adapter import InsuranceAdapter, RulesAdapter
from clearing.clinic.schemas import SplitIn, SplitOut
from clearing.http.bodies import StrictJsonRoute
from clearing.http.deps import SessionDep
from clearing.http.problems import PROBLEM_RESPONSES
from clearing.registry.signed import SigningTerminalDep

router = APIRouter(route_class=StrictJsonRoute, tags=["clinic"], responses=PROBLEM_RESPONSES)
_DEFAULT_ADAPTER = RulesAdapter()


def _adapter(request: Request) -> InsuranceAdapter:
    return getattr(request.app.state, "insurance_adapter", None) or _DEFAULT_ADAPTER


@router.post(
    "/v1/terminals/{terminal_id}/clinic/splits",
    response_model=SplitOut,
    summary="Split a clinic visit's bill (terminal-signed)",
    description="A clinic terminal asks how a visit's bill splits between the card holder's "
    "medical-insurance fund and the patient, by the scheme's rules (deductible, insured share, "
    "annual cap). Idempotent per visit_id: asking again answers the same split, another bill "
    "under the same visit_id is 409. The patient's share is then debited from the card and the "
    "insured share is claimed from the fund when the clinic's record clears.",
)
async def split_visit(
    request: Request, body: SplitIn, session: SessionDep, terminal: SigningTerminalDep
) -> SplitOut:
    split = await service.split_visit(
        await session.connection(),
        _adapter(request),
        terminal,
        visit_id=body.visit_id,
        card_no=body.card_no,
        bill_fen=body.bill_fen,
        visit_at=body.visit_at,
    )
    return SplitOut(
        visit_id=body.visit_id,
        card_no=body.card_no,
        scheme=split.scheme,
        bill_fen=split.bill_fen,
        insured_fen=split.insured_fen,
        patient_fen=split.patient_fen,
        rule=split.rule,
    )
