"""The app factory: settings → platform (backends, `server/platform.py`) → registry → the doors,
as plain data."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from roost.clock import Clock
from roost.errors import APIError, NotFoundError, ValidationError
from roost.server.dashboard import dashboard_routes
from roost.server.dispatch import Dispatcher
from roost.server.files import file_routes
from roost.server.openapi import openapi_document, operations_page, swagger_page, swagger_static
from roost.server.platform import build_platform, open_platform
from roost.server.responses import compressed, error_reply, request_id, response_codec
from roost.server.rest import RestDoor
from roost.server.signin import signin_routes
from roost.server.ws import WebSocketDoor
from roost.services import build_registry
from roost.services.registry import Registry
from roost.settings import Settings, load_settings

logger = logging.getLogger("roost.server")


def create_app(
    settings: Settings | None = None,
    registry: Registry | None = None,
    *,
    clock: Clock | None = None,
) -> RestDoor:
    """The Roost ASGI app. Without settings, they are read from the environment; without a
    registry, it serves the platform's (`roost.services.build_registry()`); without a clock,
    its expiries run on the machine's (`roost.clock`)."""
    settings = settings or load_settings()
    platform = build_platform(settings, clock=clock)
    registry = build_registry() if registry is None else registry
    dispatcher = Dispatcher(platform, registry)

    # Built on first request, not at start: they cost ~0.3 s, which every server start (and
    # every test server) would otherwise pay.
    @functools.cache
    def openapi() -> bytes:
        return json.dumps(openapi_document(registry)).encode()

    @functools.cache
    def operations() -> bytes:
        return operations_page(registry).encode()

    @functools.cache
    def swagger() -> bytes:
        return swagger_page().encode()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_platform(settings, platform=platform):
            try:
                yield
            finally:
                await dispatcher.limits.close()  # before the limiter it reports through

    async def openapi_endpoint(request: Request) -> Response:
        encoding = request.headers.get("accept-encoding")
        return compressed(openapi(), "application/json", accept_encoding=encoding).as_response()

    async def docs_endpoint(request: Request) -> Response:
        encoding = request.headers.get("accept-encoding")
        answer = compressed(swagger(), "text/html; charset=utf-8", accept_encoding=encoding)
        return answer.as_response()

    async def operations_endpoint(request: Request) -> Response:
        encoding = request.headers.get("accept-encoding")
        answer = compressed(operations(), "text/html; charset=utf-8", accept_encoding=encoding)
        return answer.as_response()

    async def root(request: Request) -> Response:
        return RedirectResponse("/docs")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error: APIError = (
            ValidationError(
                f"{request.method} is not allowed on {request.url.path}",
                code="method_not_allowed",
                status_code=405,
            )
            if exc.status_code == 405
            else NotFoundError(f"no route {request.method} {request.url.path}; see /docs")
        )
        codec = response_codec(request.headers.get("accept"))
        return error_reply(
            error, codec, request_id(request.headers.get("x-request-id"))
        ).as_response()

    routes = [
        *file_routes(dispatcher),
        *signin_routes(dispatcher),
        *dashboard_routes(dispatcher),
        Route("/api/v1/openapi.json", openapi_endpoint, methods=["GET"]),
        Route("/docs", docs_endpoint, methods=["GET"]),
        Route("/docs/operations", operations_endpoint, methods=["GET"]),
        Mount("/docs/static", app=swagger_static()),
        Route("/", root, methods=["GET"]),
    ]
    pages = Starlette(
        routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan
    )
    websocket = WebSocketDoor(dispatcher)

    async def other_doors(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await websocket(scope, receive, send)
        else:
            await pages(scope, receive, send)

    return RestDoor(dispatcher, fallback=other_doors)
