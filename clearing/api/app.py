"""The back office's FastAPI application: `create_app(settings)` wires routers, errors, state.

The settings the app was made with are on `app.state.settings` (read through `SettingsDep`); the
database engine, the ledger and the list-signing key live on `app.state` for the app's
lifetime (opened in the lifespan, closed at shutdown). Every error leaves as an RFC 9457
problem (clearing/http/problems.py). Routers are imported plainly: a missing one fails at startup.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clearing import db
from clearing.api import health
from clearing.api.docs import install_offline_docs
from clearing.approvals import endpoints as approvals_endpoints
from clearing.billing import endpoints as billing_endpoints
from clearing.cards import endpoints as cards_endpoints
from clearing.clinic import endpoints as clinic_endpoints
from clearing.db.locks import sqlite_write_lock_at_begin
from clearing.http.problems import (
    PROBLEM_MEDIA_TYPE,
    Problem,
    install_problem_handlers,
    problem_response,
)
from clearing.ingest import endpoints as ingest_endpoints
from clearing.lists import endpoints as lists_endpoints
from clearing.lists.signing import load_server_key
from clearing.mobile import endpoints as mobile_endpoints
from clearing.quarantine import endpoints as quarantine_endpoints
from clearing.registry import endpoints as registry_endpoints
from clearing.residents import endpoints as residents_endpoints
from clearing.settings import Settings, get_settings
from clearing.settlement import endpoints as settlement_endpoints
from clearing.staff import endpoints as staff_endpoints
from clearing.web.app import mount_web
from insight import endpoints as insight_endpoints
from ledger.writer import Ledger
from reconciliation import endpoints as reconciliation_endpoints

# Batches are at most 4 MiB (docs/terminal-protocol.md); nothing else comes close.
REQUEST_BYTES_MAX = 4 * 1024 * 1024
API_VERSION = "1.0.0"

log = logging.getLogger("clearing.api")

# The routers, in the order they appear in the API's documentation.
ROUTERS = (
    residents_endpoints,  # sign-up, login and GET /v1/me (for every role) come first
    staff_endpoints,  # staff sign-in
    registry_endpoints,
    cards_endpoints,
    ingest_endpoints,
    lists_endpoints,
    quarantine_endpoints,
    clinic_endpoints,
    settlement_endpoints,
    mobile_endpoints,
    billing_endpoints,
    insight_endpoints,
    reconciliation_endpoints,
    approvals_endpoints,
)


class BodyLimit:
    """Refuse a request body above `limit` bytes with 413, before it is read into memory."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.limit:
                    await self._refuse(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            "payload_too_large",
            "Payload too large",
            f"request bodies are limited to {self.limit} bytes",
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_database_url()
        engine = db.make_engine(url)
        if engine.dialect.name == "sqlite":
            sqlite_write_lock_at_begin(engine)
        app.state.engine = engine
        app.state.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        app.state.list_key = load_server_key(settings)
        app.state.ledger = None
        async with AsyncExitStack() as stack:
            app.state.ledger = await stack.enter_async_context(await Ledger.open(url))
            try:
                yield
            finally:
                await engine.dispose()

    app = FastAPI(
        title="onecard clearing",
        version=API_VERSION,
        summary="Back office of the city one-card: registry, ingestion, lists, clearing.",
        description="Terminals sign their requests (docs/terminal-protocol.md); staff and "
        "residents use bearer tokens. Every error is an RFC 9457 problem.",
        lifespan=lifespan,
        docs_url=None,  # served from the package by install_offline_docs, never a CDN
        redoc_url=None,
    )
    # Set here, not in the lifespan: SettingsDep works for every request of this app, including
    # those of a test client that never ran the lifespan.
    app.state.settings = settings
    install_problem_handlers(app)
    install_offline_docs(app)
    app.add_middleware(BodyLimit, limit=REQUEST_BYTES_MAX)
    app.include_router(health.router)
    extra_models: list[type[BaseModel]] = []
    for module in ROUTERS:
        app.include_router(module.router)
        extra_models.extend(getattr(module, "OPENAPI_MODELS", ()))
    _describe_models(app, extra_models)
    mount_web(app, settings)  # the web apps' pages at /web (clearing/web, docs/web.md)
    return app


def _describe_models(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Add to the OpenAPI components the bodies that endpoints parse themselves (after auth)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            described = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in described.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components.setdefault(model.__name__, described)
        _document_problems(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_problems(schema: dict[str, Any]) -> None:
    """Every error answer is documented as what it is: an RFC 9457 problem. FastAPI documents its
    own 422 as `application/json` HTTPValidationError, which this API never sends; routes name
    only some statuses. So each 4xx/5xx entry gets the problem body, and every operation a
    `default` problem for the rest (401 and 403 of authentication, 413 of the body limit, ...)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    described = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.setdefault("Problem", described)
    content = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, response in responses.items():
                if status[:1] in ("4", "5"):
                    response["content"] = dict(content)
            responses.setdefault(
                "default", {"description": "An error, as an RFC 9457 problem", "content": content}
            )
    text = json.dumps(schema["paths"])
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{unused}" not in text:
            components.pop(unused, None)
