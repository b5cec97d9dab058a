"""One shape for each habit, across packages.

- A broken invariant raises an `AssertionError` subclass in every package, also under
  `python -O`, and is never one of the package's business errors (so no handler of expected
  failures, e.g. the API's problem mapping of `LedgerError`, can swallow a bug).
- No bare `assert` outside the tests (`python -O` strips them).
- One name for the HTTP status an error answers: `status`.
- One money formatter, `cardio.money.yuan`, for terminals, command line and settlement files.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import cardio.invariant
import clearing.api.app  # loads every router: every error class is defined
import clearing.cli.money
import clearing.engine.posting
import clearing.engine.runs
import clearing.engine.service
import insight.errors
import ledger.errors
import terminals.errors
import terminals.kiosk
import terminals.terminal
from cardio.errors import CardioError
from cardio.money import yuan
from clearing.errors import ClearingError
from clearing.settlement.files import yuan_text
from insight.errors import InsightError
from ledger.errors import LedgerError
from terminals.errors import TerminalError

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ledger", "cardio", "terminals", "clearing", "reconciliation", "insight", "bench")

# (module whose `invariant` the package uses, the package's business error bases)
BUG_CHECKS = [
    ("ledger.errors", ledger.errors, (LedgerError,)),
    ("cardio.invariant", cardio.invariant, (CardioError,)),
    ("terminals.errors", terminals.errors, (TerminalError, CardioError)),
    ("clearing.engine.posting", clearing.engine.posting, (ClearingError, LedgerError)),
    ("insight.errors", insight.errors, (InsightError, ClearingError)),
]


@pytest.mark.parametrize(("name", "module", "business"), BUG_CHECKS, ids=[b[0] for b in BUG_CHECKS])
def test_a_broken_invariant_is_an_assertion_never_a_business_error(
    name: str, module: object, business: tuple[type[Exception], ...]
) -> None:
    with pytest.raises(AssertionError, match="the books balance") as raised:
        module.invariant(False, "the books balance")  # type: ignore[attr-defined]
    assert type(raised.value).__name__ == "InvariantError"
    assert not isinstance(raised.value, business), (
        f"{name}: a bug would be caught as a business error"
    )
    assert not isinstance(raised.value, clearing.engine.runs.EngineError)
    module.invariant(True, "holds")  # type: ignore[attr-defined]


def test_terminals_and_clearing_use_the_bottom_packages_invariant() -> None:
    assert terminals.errors.invariant is cardio.invariant.invariant
    assert terminals.errors.InvariantError is cardio.invariant.InvariantError
    assert clearing.engine.posting.invariant is ledger.errors.invariant


def test_every_invariant_still_fires_under_python_O() -> None:
    script = "\n".join(
        f"import {name}\n"
        f"try:\n    {name}.invariant(False, 'x')\nexcept AssertionError as e:\n"
        f"    print('{name}', type(e).__name__)\nelse:\n    print('{name} silent')"
        for name, _, _ in BUG_CHECKS
    )
    ran = subprocess.run(
        [sys.executable, "-O", "-c", script], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split("\n")[:-1] == [f"{name} InvariantError" for name, _, _ in BUG_CHECKS]


def _bare_asserts() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            found += [
                f"{path.relative_to(REPO)}:{node.lineno}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Assert)
            ]
    return found


def test_no_bare_assert_outside_the_tests() -> None:
    assert _bare_asserts() == [], "python -O strips these: use invariant() or a typed error"


def _subclasses(base: type) -> list[type]:
    found = [base]
    for sub in base.__subclasses__():
        found += _subclasses(sub)
    return found


def test_every_error_names_its_http_status_status() -> None:
    """One attribute name, `status` (RFC 9457's member), for the API's problem mapping."""
    errors = _subclasses(ClearingError) + _subclasses(LedgerError)
    assert [e for e in errors if not isinstance(getattr(e, "status", None), int)] == []
    assert [e for e in errors if hasattr(e, "http_status") or hasattr(e, "status_code")] == []


@pytest.mark.parametrize("fen", [0, 5, 250, 100_000, 123_456_789])
def test_terminals_command_line_and_settlement_files_use_the_one_money_formatter(fen: int) -> None:
    assert yuan_text(fen) == yuan(fen, grouped=False)
    assert clearing.cli.money.yuan is yuan
    assert terminals.terminal.yuan is yuan and terminals.kiosk.yuan is yuan
    assert not hasattr(terminals.terminal, "_yuan")
