"""Schemathesis against the service's own OpenAPI schema, on a real uvicorn: never a 500, and
every answer (errors too) is what the schema documents: its status, media type and body.

Starts `uvicorn clearing.api.app:create_app` in a subprocess on an embedded SQLite database
(migrated, with an admin token), waits until /healthz answers, then lets Schemathesis
generate requests for every operation, with and without valid credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from clearing import db
from clearing.auth.models import Role
from tests.clearing.apiharness import issue_token_in_subprocess, uvicorn_server

EXAMPLES_PER_OPERATION = 30


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite+aiosqlite:///{(data_dir / 'onecard.db').as_posix()}"
    db.upgrade(url)
    with uvicorn_server(url, data_dir) as (base, env):
        yield base, issue_token_in_subprocess(env, Role.ADMIN, "fuzz")


def _header(headers: dict, name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value[0] if isinstance(value, list) else value
    return ""


def test_no_request_makes_a_server_error(service_url) -> None:
    """Every operation, EXAMPLES_PER_OPERATION generated requests, each with and without a token.

    Driven through Hypothesis directly (Schemathesis' pytest plugin does not load under
    pytest 9); a failure names the operation and the request that broke it.
    """
    base, token = service_url
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
                case.validate_response(
                    response,
                    checks=[
                        not_a_server_error,
                        status_code_conformance,
                        content_type_conformance,
                        response_schema_conformance,
                    ],
                )
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
    # The token really reached the service: most operations were also exercised past auth.
    assert len(succeeded) >= len(operations) // 2, sorted(succeeded)
