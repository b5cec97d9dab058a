"""The payout of a day, pure (clearing.settlement.payout): whatever the day earned, the payouts
and the commission add up to it to the fen, nobody is paid a negative amount, and the transfers
that move it carry exactly the lines' amounts under ids a retry reproduces."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from clearing.settlement.payout import (
    Earnings,
    Payee,
    PayoutAccounts,
    Settlement,
    missing_payees,
    payout_lines,
    payout_transfers,
    run_totals,
)

DAY = date(2026, 11, 30)
fen = st.integers(min_value=0, max_value=10**11)
earnings_of = st.builds(Earnings, st.integers(0, 10**7), fen, fen, fen)
codes = st.text(alphabet="ABCDEFGHIJ0123456789", min_size=1, max_size=8)
days = st.dictionaries(codes, earnings_of, max_size=8)
rates = st.integers(min_value=0, max_value=10_000)


def _payees(earnings: dict[str, Earnings], bp: dict[str, int]) -> dict[str, Payee]:
    return {
        code: Payee(f"Operator {code}", "Bank", f"62{i:010d}", bp.get(code, 50))
        for i, code in enumerate(earnings)
    }


def _accounts(lines) -> PayoutAccounts:
    return PayoutAccounts(
        {line.participant_code: 1000 + i for i, line in enumerate(lines)}, commission=1, escrow=2
    )


@given(days, st.dictionaries(codes, rates))
def test_payouts_and_commission_add_up_to_what_the_day_earned(
    earnings: dict[str, Earnings], bp: dict[str, int]
) -> None:
    lines = payout_lines(earnings, _payees(earnings, bp))
    earned = sum(e.fares_fen + e.subsidy_fen + e.insured_fen for e in earnings.values())
    assert [line.participant_code for line in lines] == sorted(earnings)
    assert sum(line.net_fen + line.commission_fen for line in lines) == earned
    for line in lines:
        assert isinstance(line.net_fen, int) and isinstance(line.commission_fen, int)
        assert line.net_fen >= 0 and line.commission_fen >= 0
        assert line.net_fen + line.commission_fen == line.gross_fen
    totals = run_totals(lines)
    settlement = Settlement(DAY, datetime(2026, 12, 1, tzinfo=UTC), "m", lines, (), False)
    assert (totals.gross_fen, totals.commission_fen, totals.net_fen, totals.taps) == (
        settlement.gross_fen,
        settlement.commission_fen,
        settlement.net_fen,
        settlement.taps,
    )
    assert totals.participants == len(earnings)


@given(days, st.dictionaries(codes, rates))
def test_the_transfers_move_exactly_the_lines_amounts_once(
    earnings: dict[str, Earnings], bp: dict[str, int]
) -> None:
    lines = payout_lines(earnings, _payees(earnings, bp))
    accounts = _accounts(lines)
    transfers, ids = payout_transfers(DAY, lines, accounts)
    assert all(t.amount > 0 for t in transfers)
    to_commission = [t for t in transfers if t.credit_account_id == accounts.commission]
    to_escrow = [t for t in transfers if t.credit_account_id == accounts.escrow]
    assert len(to_commission) + len(to_escrow) == len(transfers)
    assert sum(t.amount for t in to_commission) == sum(line.commission_fen for line in lines)
    assert sum(t.amount for t in to_escrow) == sum(line.net_fen for line in lines)
    assert {t.debit_account_id for t in transfers} <= set(accounts.payable.values())
    assert len({t.id for t in transfers}) == len(transfers)
    for line in lines:
        line_ids = ids[line.participant_code]
        assert (line_ids.commission is None) == (line.commission_fen == 0)
        assert (line_ids.payout is None) == (line.net_fen == 0)
    # A retry of the same day posts the same ids (the ledger answers EXISTS); another day does not.
    assert payout_transfers(DAY, lines, accounts) == (transfers, ids)
    other, _ = payout_transfers(DAY + timedelta(days=1), lines, accounts)
    assert not {t.id for t in other} & {t.id for t in transfers}


def test_commission_rounds_half_up_once_per_day_and_the_rest_is_paid() -> None:
    earnings = {"BUS1": Earnings(taps=1, fares_fen=150, subsidy_fen=49, insured_fen=0)}
    (line,) = payout_lines(earnings, {"BUS1": Payee("Bus One", "Bank", "6200", 50)})
    # 199 fen at 0.5% = 0.995 fen: rounds to 1 fen, 198 fen is paid out.
    assert (line.gross_fen, line.commission_fen, line.net_fen) == (199, 1, 198)


def test_a_participant_missing_from_the_registry_is_named() -> None:
    earnings = {"BUS1": Earnings(1, 200, 0, 0), "BUS2": Earnings(1, 200, 0, 0)}
    payees = {"BUS1": Payee("Bus One", "Bank", "6200", 50)}
    assert missing_payees(earnings, payees) == ["BUS2"]
