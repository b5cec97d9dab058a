"""The application shell: health, readiness, OpenAPI, problem bodies for framework errors."""

from __future__ import annotations

import pytest

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
