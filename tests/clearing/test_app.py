"""The application shell: health, readiness, OpenAPI, problem bodies for framework errors."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.routing import APIRoute

from clearing.api.app import create_app
from clearing.http.deps import SettingsDep
from clearing.settings import Settings
from tests.clearing.apiharness import running_app, world


async def test_readiness_needs_a_migrated_database(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{(tmp_path / 'empty.db').as_posix()}"
    async with running_app(url, tmp_path) as (_, client):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.headers["content-type"].startswith("application/problem+json")


async def test_ready_on_a_migrated_database(sqlite_url, tmp_path) -> None:
    async with running_app(sqlite_url, tmp_path) as (_, client):
        ready = (await client.get("/readyz")).json()
        assert ready["status"] == "ready" and ready["database"] == "sqlite"
        assert ready["schema_revision"] and ready["ledger"] is True


async def test_framework_errors_are_problems(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        missing = await w.client.get("/v1/nowhere")
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        assert missing.headers["content-type"].startswith("application/problem+json")
        wrong_method = await w.client.delete("/v1/cards", headers=w.auth("admin"))
        assert wrong_method.status_code == 405 and wrong_method.json()["status"] == 405
        bad_query = await w.client.get("/v1/cards?limit=0", headers=w.auth("admin"))
        assert bad_query.status_code == 422
        assert bad_query.json()["errors"][0]["loc"] == ["query", "limit"]


async def test_openapi_describes_every_route_and_the_batch_body(sqlite_url, tmp_path) -> None:
    async with running_app(sqlite_url, tmp_path) as (_, client):
        schema = (await client.get("/openapi.json")).json()
        assert "BatchUpload" in schema["components"]["schemas"]
        upload = schema["paths"]["/v1/terminals/{terminal_id}/batches"]["post"]
        assert upload["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/BatchUpload"
        }
        for path in ("/v1/cards", "/v1/participants", "/v1/terminals/{terminal_id}/deny-list"):
            assert path in schema["paths"]


@pytest.fixture(params=["pg_url", "sqlite_url"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(request.param)


async def test_values_the_database_cannot_take_are_422_and_other_db_errors_500(
    db_url, tmp_path
) -> None:
    url = db_url
    from sqlalchemy import select

    from clearing.ingest.models import TapRecord

    async with running_app(url, tmp_path) as (app, client):

        async def overflow() -> None:
            async with app.state.sessionmaker() as session:
                await session.execute(select(TapRecord.id).where(TapRecord.id == 2**70))

        async def broken_sql() -> None:
            from sqlalchemy import text

            async with app.state.sessionmaker() as session:
                await session.execute(text("SELECT * FROM no_such_table"))

        app.add_api_route("/test/overflow", overflow)
        app.add_api_route("/test/broken", broken_sql)
        too_big = await client.get("/test/overflow")
        assert too_big.status_code == 422 and too_big.json()["code"] == "value_out_of_range"
        broken = await client.get("/test/broken")
        assert broken.status_code == 500 and broken.json()["code"] == "internal_error"
        assert "no_such_table" not in broken.text  # internals stay in the log


async def test_settings_dependency_gives_the_settings_the_app_was_made_with(
    sqlite_url, tmp_path
) -> None:
    settings = Settings(database_url=sqlite_url, data_dir=tmp_path, settlement_cutoff="05:30")
    app = create_app(settings)

    async def cutoff(current: SettingsDep) -> dict[str, str]:
        return {"cutoff": current.settlement_cutoff, "data_dir": str(current.data_dir)}

    app.add_api_route("/test/settings", cutoff)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answer = await client.get("/test/settings")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"cutoff": "05:30", "data_dir": str(tmp_path)}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/quarantine/4611686018427387904", 404),  # 2**62: the bound itself
        ("/v1/quarantine/4611686018427387905", 422),
        ("/v1/quarantine/18446744073709551616", 422),  # past any 64-bit integer
        ("/v1/quarantine?after_id=4611686018427387904", 200),
        ("/v1/quarantine?after_id=4611686018427387905", 422),
        ("/v1/quarantine?after_id=-1", 422),
    ],
)
async def test_quarantine_ids_are_bounded_in_the_schema(sqlite_url, tmp_path, path, status) -> None:
    async with world(sqlite_url, tmp_path) as w:
        answer = await w.client.get(path, headers=w.auth("finance"))
        assert answer.status_code == status, answer.text
        if status == 422:
            # refused by the schema (names the field), not by the database's range check
            assert answer.json()["code"] == "invalid_request"
            assert answer.json()["errors"][0]["loc"][-1] in ("tap_id", "after_id")


ASSET_URL = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_everything_from_this_host(sqlite_url, tmp_path, page) -> None:
    """The API pages work on a back-office network with no internet: every script, style, icon
    and the schema come from the service itself, and each of them answers."""
    async with running_app(sqlite_url, tmp_path) as (_, client):
        html = await client.get(page)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        urls = [a or b for a, b in ASSET_URL.findall(html.text)]
        assert any(url.endswith(".js") for url in urls), urls
        assert "/openapi.json" in urls
        for url in urls:
            target = urlsplit(url)
            assert not target.scheme and not target.netloc, f"{page} loads {url} from outside"
            asset = await client.get(url)
            assert asset.status_code == 200 and asset.content, url


async def test_every_operation_has_a_summary_and_a_description(sqlite_url, tmp_path) -> None:
    async with running_app(sqlite_url, tmp_path) as (app, client):
        schema = (await client.get("/openapi.json")).json()
    names = {
        (method.lower(), route.path_format): route.name
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    missing = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            # FastAPI makes up a summary from the function's name ("Write Off"): not one.
            made_up = names.get((method, path), "").replace("_", " ").title()
            if operation.get("summary") in (None, "", made_up) or not operation.get("description"):
                missing.append(f"{method.upper()} {path}")
    assert not missing, missing
    assert len(schema["paths"]) >= 20


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/cards", "GET, POST"),
        ("OPTIONS", "/v1/participants", "GET, POST"),
        ("PUT", "/v1/participants/bus-1", "GET, PATCH"),
        ("GET", "/v1/cards/issue-run", "POST"),
        ("GET", "/v1/settlements/2026-11-28", None),  # allowed: not a 405
        ("DELETE", "/v1/settlements/2026-11-28", "GET, POST"),
        ("DELETE", "/docs-assets/swagger-ui.css", "GET, HEAD"),  # static files: theirs
    ],
)
async def test_undeclared_methods_are_405_problems_naming_every_allowed_method(
    sqlite_url, tmp_path, method, path, allow
) -> None:
    async with world(sqlite_url, tmp_path) as w:
        answer = await w.client.request(method, path, headers=w.auth("finance"))
        if allow is None:
            assert answer.status_code != 405
            return
        assert answer.status_code == 405, answer.text
        assert answer.headers["allow"] == allow
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "method_not_allowed" and method in answer.json()["detail"]
