"""The application shell: health, readiness, OpenAPI, problem bodies for framework errors."""

from __future__ import annotations

import httpx
import pytest

from clearing.api.app import create_app
from clearing.api.deps import SettingsDep
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
