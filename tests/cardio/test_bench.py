"""bench/tap.py stays runnable and ends with its JSON line (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "tap.py"
KEYS = {
    "pcsc_tap_p50_ms",
    "pcsc_tap_p99_ms",
    "inproc_tap_p99_ms",
    "crypto_us_per_tap",
    "tac_verify_us",
    "tac_verify_new_card_us",
    "tac_verify_per_call_us",
}


def _bench():
    spec = importlib.util.spec_from_file_location("bench_tap", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_in_process_prints_the_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert _bench().main(["--taps", "5", "--no-pcsc"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert KEYS <= result.keys()
    assert result["pcsc_tap_p99_ms"] is None and result["inproc_tap_p99_ms"] > 0


@pytest.mark.pcsc
def test_bench_through_pcscd_prints_the_json_line(
    capsys: pytest.CaptureFixture[str], pcscd_reader: str
) -> None:
    from .conftest import VPCD_PORT

    argv = ["--taps", "5", "--reader", pcscd_reader, "--vpcd", f"127.0.0.1:{VPCD_PORT}"]
    assert _bench().main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["pcsc_tap_p50_ms"] > 0 and result["pcsc_tap_p99_ms"] >= result["pcsc_tap_p50_ms"]
