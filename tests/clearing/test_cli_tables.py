"""The finance staff's tables read whole at 80 columns (a terminal, or a pipe, where rich
assumes 80): no cell is cut to "…", every amount and id appears in full."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest
from rich.console import Console

from clearing.cli.clearing_cmd import print_quarantine, print_settlement, print_summary, yuan
from clearing.settlement.files import PayoutLine
from clearing.settlement.service import Claim, Settlement

WIDTH = 80


def _render(draw) -> str:  # type: ignore[no-untyped-def]
    buffer = io.StringIO()
    draw(Console(file=buffer, width=WIDTH, color_system=None, force_terminal=False))
    return buffer.getvalue()


def _line(code: str, fen: int) -> PayoutLine:
    # a big operator's day in a city of 20 million: millions of taps, ten-million-yuan figures
    return PayoutLine(
        participant_code=code,
        participant_name=code,
        bank_name="Bank",
        bank_account="6222020200112233445",
        taps=9_999_999,
        fares_fen=fen,
        subsidy_fen=fen // 3,
        insured_fen=fen // 7,
        commission_bp=125,
        commission_fen=(fen + fen // 3 + fen // 7) * 125 // 10_000,
        net_fen=(fen + fen // 3 + fen // 7) * (10_000 - 125) // 10_000,
    )


def _assert_whole(text: str, values: list[str]) -> None:
    assert "…" not in text, text
    assert all(len(line) <= WIDTH for line in text.splitlines()), text
    for value in values:
        assert value in text, (value, text)


@pytest.mark.parametrize("code", ["bus-east", "clinic-central", "a-participant-code-of-32-chars-x"])
def test_settlement_tables_fit_80_columns_whole(code: str) -> None:
    lines = (_line(code, 1_234_567_89), _line("bus-2", 7_765_432_10))
    settlement = Settlement(
        date(2026, 11, 28),
        datetime(2026, 11, 28, 20, tzinfo=UTC),
        "M1",
        lines,
        (Claim("subsidy:senior", "subsidy", "senior", 3, 600),),
        False,
    )
    files = SimpleNamespace(csv="var/s.csv", xml="var/s.xml", claims="var/c.csv")
    text = _render(lambda console: print_settlement(settlement, files, console))
    amounts = [
        yuan(value)
        for line in lines
        for value in (
            line.fares_fen,
            line.subsidy_fen,
            line.insured_fen,
            line.gross_fen,
            line.commission_fen,
            line.net_fen,
        )
    ]
    _assert_whole(text, [*amounts, yuan(settlement.net_fen), yuan(settlement.gross_fen), "1.25%"])
    # a long code folds onto more lines but is never cut: the first column, line by line
    first_column = "".join(
        line.split(" ", 1)[0] for line in text.splitlines() if line[:1] not in ("", " ")
    )
    assert code in first_column, text


def test_quarantine_table_fits_80_columns_whole() -> None:
    rows = [
        SimpleNamespace(
            id=9_999_999,
            reason="counter_reused_different_amount",
            kind="purchase",
            terminal_id="000001000050",
            terminal_seq=4_294_967_295,
            card_no="3100000000000123",
            card_counter=65_535,
            amount_fen=12_345_67,  # a clinic bill
            occurred_at=datetime(2026, 11, 28, 22, 10, tzinfo=UTC),
        )
    ]
    counts = {"counter_reused_different_amount": 1}
    text = _render(lambda console: print_quarantine(rows, counts, console))
    _assert_whole(
        text,
        [
            "9999999",
            "counter reused",
            "000001000050",
            "#4294967295",
            "3100000000000123",
            "#65535",
            "12,345.67",
            "2026-11-29",  # 22:10 UTC is the next morning in Asia/Shanghai
            "06:10",
            "counter_reused_different_amount: 1",
        ],
    )


def test_clearing_summary_fits_80_columns_whole() -> None:
    summary = SimpleNamespace(
        run_id=123456,
        records_seen=1_000_000,
        posted=999_000,
        duplicates=500,
        voided=100,
        quarantined=400,
        resolved=12,
        amount_fen_posted=2_000_000_00,
        reasons={"bad_tac": 400},
    )
    text = _render(lambda console: print_summary(summary, console))
    _assert_whole(text, ["1000000", "999000", "2,000,000.00"])
