"""Clinic co-payments: the rules-based insurance split (Hypothesis), the terminal-signed split
endpoint, and a visit cleared into a card debit plus a claim on the insurer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from clearing import books
from clearing.calendar import BusinessCalendar
from clearing.clinic.adapter import RulesAdapter
from clearing.clinic.rules import BILL_FEN_MAX, RuleError, SchemeRule, YearToDate, split_bill
from clearing.clinic.service import split_visit
from clearing.engine.reasons import QuarantineReason as R
from clearing.registry import service as registry_service
from clearing.registry.schemas import TerminalCreate
from clearing.settlement.service import settle_day
from tests.clearing.apiharness import SignedTerminal, public_hex, running_app
from tests.clearing.test_engine import (
    ADULT,
    ADULT_2,
    BUS_TERMINAL,
    World,
    engine_pg_url,
    world,
    world_url,
)

__all__ = ["engine_pg_url", "world", "world_url"]

rules = st.builds(
    SchemeRule,
    scheme=st.just("s"),
    deductible_fen=st.integers(0, 10**6),
    insured_bp=st.integers(0, 10_000),
    annual_cap_fen=st.integers(0, 10**7),
)
bills = st.integers(0, 10**7)
ytds = st.builds(
    YearToDate, deductible_fen=st.integers(0, 10**6), insured_fen=st.integers(0, 10**7)
)


@given(rules, bills, ytds)
def test_split_adds_up_and_respects_deductible_and_cap(
    rule: SchemeRule, bill: int, ytd: YearToDate
) -> None:
    split = split_bill(rule, bill, ytd)
    assert split.insured_fen + split.patient_fen == bill
    assert split.insured_fen >= 0 and split.patient_fen >= 0
    # never more than the rule's share of what is above the deductible
    assert split.insured_fen * 10_000 <= (bill - split.deductible_fen) * rule.insured_bp
    # the year's insured total stays within the cap (unless already over it before)
    assert split.insured_fen == 0 or ytd.insured_fen + split.insured_fen <= rule.annual_cap_fen
    # the deductible is used up before anything is insured
    assert split.deductible_fen == min(bill, max(0, rule.deductible_fen - ytd.deductible_fen))


@given(rules, st.lists(bills, min_size=1, max_size=12))
def test_a_year_of_visits_never_exceeds_the_cap(rule: SchemeRule, visits: list[int]) -> None:
    ytd = YearToDate()
    for bill in visits:
        split = split_bill(rule, bill, ytd)
        ytd = YearToDate(
            ytd.deductible_fen + split.deductible_fen, ytd.insured_fen + split.insured_fen
        )
    assert ytd.insured_fen <= rule.annual_cap_fen
    assert ytd.deductible_fen <= rule.deductible_fen


def test_split_examples() -> None:
    rule = SchemeRule("urban", deductible_fen=100_00, insured_bp=8000, annual_cap_fen=500_00)
    first = split_bill(rule, 300_00, YearToDate())
    assert (first.deductible_fen, first.insured_fen, first.patient_fen) == (100_00, 160_00, 140_00)
    capped = split_bill(rule, 1000_00, YearToDate(100_00, 400_00))
    assert capped.insured_fen == 100_00  # only 100 yuan of cap left
    odd = split_bill(SchemeRule("x", 0, 3333, 10**9), 1, YearToDate())
    assert (odd.insured_fen, odd.patient_fen) == (0, 1)  # the fund rounds down
    with pytest.raises(RuleError):
        split_bill(rule, BILL_FEN_MAX + 1, YearToDate())


async def test_split_endpoint_then_clinic_tap_clears_with_insurer_claim(
    world: World, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    clinic_id = "0000020000C9"
    async with running_app(world.url, tmp_path) as (app, client):
        # this city's "urban" scheme: no deductible, 80 % insured, 500 yuan a year
        app.state.insurance_adapter = RulesAdapter({"urban": SchemeRule("urban", 0, 8000, 500_00)})
        async with app.state.sessionmaker() as session:
            await registry_service.register_terminal(
                session,
                TerminalCreate(
                    terminal_id=clinic_id,
                    participant="clinic-1",
                    kind="clinic",
                    line="outpatients",
                    public_key=public_hex(key),
                ),
            )
            await session.commit()
        terminal = SignedTerminal(clinic_id, key, client)
        path = f"/v1/terminals/{clinic_id}/clinic/splits"

        async def ask(visit_id: str, bill_fen: int, card_no: str = ADULT) -> httpx.Response:
            body = json.dumps(
                {
                    "visit_id": visit_id,
                    "card_no": card_no,
                    "bill_fen": bill_fen,
                    "visit_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
                }
            ).encode()
            return await client.post(
                path, content=body, headers=terminal.headers("POST", path, body)
            )

        answer = await ask("V-1", 50_00)
        assert answer.status_code == 200, answer.text
        split = answer.json()
        assert split == {
            "visit_id": "V-1",
            "card_no": ADULT,
            "scheme": "urban",
            "bill_fen": 50_00,
            "insured_fen": 40_00,
            "patient_fen": 10_00,
            "rule": split["rule"],
        }
        assert (await ask("V-1", 50_00)).json() == split  # asked again: the same answer
        assert (await ask("V-1", 60_00)).status_code == 409  # another bill, same visit
        assert (await ask("V-2", 50_00, card_no=ADULT_2)).json()["scheme"] is None  # uninsured
        unsigned = await client.post(path, json={"visit_id": "V-3"})
        assert unsigned.status_code == 401

    ok = world.ride(
        ADULT, 10_00, kind="clinic", terminal_id=clinic_id, visit_id="V-1", insured_fen=40_00
    )
    wrong = world.ride(
        ADULT, 5_00, kind="clinic", terminal_id=clinic_id, visit_id="V-2", insured_fen=40_00
    )
    unknown = world.ride(
        ADULT, 1_00, kind="clinic", terminal_id=clinic_id, visit_id="V-404", insured_fen=0
    )
    await world.upload([ok, wrong, unknown], terminal_id=clinic_id)
    await world.engine.clear_pending()
    assert sorted(await world.reasons()) == [R.CLINIC_SPLIT_MISMATCH, R.CLINIC_SPLIT_UNKNOWN]
    assert await world.balance(books.card(ADULT)) == 100_00 - 10_00
    assert await world.balance(books.insurer("urban")) == 40_00
    assert await world.balance(books.payable("clinic-1")) == 50_00

    calendar = BusinessCalendar()
    now = datetime.now(UTC)
    async with world.ledger.transaction() as conn:
        settlement = await settle_day(
            conn,
            world.ledger,
            calendar.business_day(now - timedelta(hours=1)),
            calendar=calendar,
            now=now,
            actor="t",
            force=True,
        )
    [line] = [line for line in settlement.lines if line.participant_code == "clinic-1"]
    assert (line.fares_fen, line.insured_fen, line.gross_fen) == (10_00, 40_00, 50_00)
    assert [(c.account, c.amount_fen) for c in settlement.claims] == [("insurer:urban", 40_00)]


async def test_a_bus_validator_cannot_ask_for_splits(world: World) -> None:
    from clearing.api.errors import Forbidden
    from clearing.registry.models import Terminal

    bus = Terminal(terminal_id=BUS_TERMINAL, participant_id=1, kind="bus")
    async with world.ledger.transaction() as conn:
        with pytest.raises(Forbidden):
            await split_visit(
                conn,
                RulesAdapter(),
                bus,
                visit_id="V",
                card_no=ADULT,
                bill_fen=100,
                visit_at=datetime.now(UTC),
            )
