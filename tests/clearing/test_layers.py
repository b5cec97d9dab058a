"""clearing in layers: one ground Base for every table, every router mounted by a plain import,
every domain's task known to the one Celery app (the import order itself is lint-imports')."""

from __future__ import annotations

from fastapi.routing import APIRoute
from sqlalchemy import create_engine, inspect

from clearing.api.app import ROUTERS, create_app
from clearing.celery_app import app as celery_app
from clearing.db.base import Base
from clearing.settings import Settings


def test_every_table_maps_onto_the_ground_base_and_matches_the_migrations(
    sqlite_url: str,
) -> None:
    create_app(Settings())  # imports every domain, so each of their tables is on Base.metadata
    engine = create_engine(sqlite_url.replace("+aiosqlite", ""))
    try:
        schema = inspect(engine)
        migrated = set(schema.get_table_names())
        mapped = set(Base.metadata.tables)
        assert {"participants", "terminals", "cards", "tap_records", "api_tokens"} <= mapped
        assert mapped <= migrated, f"tables no migration creates: {sorted(mapped - migrated)}"
        for name, table in Base.metadata.tables.items():
            columns = {column["name"] for column in schema.get_columns(name)}
            assert set(table.columns.keys()) == columns, name
    finally:
        engine.dispose()


def test_the_app_mounts_every_router_it_imports() -> None:
    paths = create_app(Settings()).openapi()["paths"]
    for module in ROUTERS:
        routes = [route for route in module.router.routes if isinstance(route, APIRoute)]
        assert routes, f"{module.__name__} has no routes"
        for route in routes:
            for method in route.methods:
                operations = paths.get(route.path_format, {})
                assert method.lower() in operations, f"{method} {route.path_format} not mounted"
    assert any(path.startswith("/v1/insight/") for path in paths)
    assert "/v1/cards/{card_no}/replace" in paths  # the card workflow's routes


def test_the_celery_app_knows_every_task_its_beat_schedules() -> None:
    scheduled = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert scheduled == {
        "clearing.clear_staged",
        "clearing.complete_replacements",
        "clearing.settle_day",
        "reconciliation.reconcile_day",
        "clearing.expire_topups",
        "clearing.dispatch_bill_confirmations",
    }
    assert scheduled <= set(celery_app.tasks)
