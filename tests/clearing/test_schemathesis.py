"""Schemathesis against the service's own OpenAPI schema, on a real uvicorn, with every check:
never a 500, every answer (errors too) what the schema documents (status, media type, headers,
body), schema-valid requests accepted and schema-violating ones refused, 405 with an exact
`Allow` for undeclared methods, resources available after creation, and the links between
operations it infers (a card just created, then its replacement, ...).

Starts `uvicorn clearing.api.app:create_app` in a subprocess on an embedded SQLite database
(migrated, with an admin token), waits until /healthz answers, then runs Schemathesis twice:
its command line with every phase (examples, coverage, fuzzing, stateful), and each operation
through Hypothesis, with and without the token. Both derandomized: a failure reproduces.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CHECKS, load_all_checks

from clearing import db
from clearing.auth.models import Role
from tests.clearing.apiharness import issue_token_in_subprocess, uvicorn_server
from tests.clearing.billerharness import BILLERS, start_biller_service

CLI_EXAMPLES = 15  # per operation and phase of the command line run
EXAMPLES_PER_OPERATION = 8  # per operation, with and without a token, in the Hypothesis run
RUN_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite+aiosqlite:///{(data_dir / 'onecard.db').as_posix()}"
    db.upgrade(url)
    # the bill routes ask a biller: the real biller service, so a lookup never meets a dead port
    biller, biller_url = start_biller_service(data_dir / "biller", BILLERS)
    os.environ["ONECARD_BILLER_URL"] = biller_url  # uvicorn_server copies os.environ
    try:
        with uvicorn_server(url, data_dir) as (base, env):
            yield base, issue_token_in_subprocess(env, Role.ADMIN, "fuzz")
    finally:
        os.environ.pop("ONECARD_BILLER_URL", None)
        biller.terminate()
        biller.wait(timeout=10)


def all_checks() -> list:
    load_all_checks()
    checks = CHECKS.get_all()
    assert len(checks) >= 14  # not_a_server_error alone would hide every other kind of bug
    return checks


def _header(headers: dict, name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value[0] if isinstance(value, list) else value
    return ""


def test_every_check_and_phase_passes(service_url, tmp_path) -> None:
    """`st run --checks all` with every phase, the stateful one following the links."""
    base, token = service_url
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json"),
        *("--checks", "all", "--phases", "examples,coverage,fuzzing,stateful"),
        *("--header", f"Authorization: Bearer {token}"),
        *("--max-examples", str(CLI_EXAMPLES), "--seed", "20261206"),
        "--generation-deterministic",
        *("--workers", "1", "--no-color", "--suppress-health-check", "all"),
    ]
    run = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-12000:]
    assert "Stateful" in output and "failures" not in output.split("SUMMARY")[-1].lower()


def test_every_operation_answers_as_documented(service_url) -> None:
    """Every operation, EXAMPLES_PER_OPERATION generated requests, each with and without a token,
    every check; every error is an RFC 9457 problem.

    Driven through Hypothesis directly (Schemathesis' pytest plugin does not load under
    pytest 9); a failure names the operation and the request that broke it.
    """
    base, token = service_url
    checks = all_checks()
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20  # the whole API is in the schema
    succeeded: set[str] = set()
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,  # the same requests every run: a failure reproduces
        )
        def call(case) -> None:
            label = case.operation.label
            for headers in ({"Authorization": f"Bearer {token}"}, None):
                response = case.call(base_url=base, headers=headers)
                case.validate_response(response, checks=checks, headers=headers)
                if response.status_code < 300:
                    succeeded.add(label)
                if response.status_code >= 400:
                    content_type = _header(response.headers, "content-type")
                    assert content_type.startswith("application/problem+json"), (
                        label,
                        response.status_code,
                        response.text[:500],
                    )

        call()
    # The token really reached the service: most operations were also exercised past auth. The
    # token is an admin's: a resident's own operations (/v1/me/...) answer it 403, as they must.
    staff_operations = [op for op in operations if not op.path.startswith("/v1/me/")]
    assert len(succeeded) >= len(staff_operations) // 2, sorted(succeeded)
