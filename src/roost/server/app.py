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
from starlette.types import ASGIApp, Receive, Scope, Send

from roost._startup import resume_collector
from roost.clock import Clock
from roost.errors import (
    APIError,
    AuthorizationError,
    ConfigurationError,
    NotFoundError,
    ValidationError,
)
from roost.server.dashboard import dashboard_routes
from roost.server.dispatch import Dispatcher, check_access, headers_of
from roost.server.files import file_routes
from roost.server.metrics import METRICS_SCOPE, Metrics, Observed, metrics_listener
from roost.server.openapi import openapi_document, operations_page, swagger_page, swagger_static
from roost.server.platform import build_platform, open_platform
from roost.server.responses import (
    as_roost_error,
    compressed,
    error_reply,
    request_id,
    response_codec,
)
from roost.server.rest import RestDoor
from roost.server.signin import signin_routes
from roost.server.ws import WebSocketDoor
from roost.services import build_registry
from roost.services.registry import Registry
from roost.services.tenants import DEFAULT_TENANT
from roost.settings import Settings, load_settings

logger = logging.getLogger("roost.server")


def create_app(
    settings: Settings | None = None,
    registry: Registry | None = None,
    *,
    clock: Clock | None = None,
) -> Observed:
    """The Roost ASGI app (the REST door and, behind it, the others, inside the metrics hook:
    `.app` is the RestDoor). Without settings, they are read from the environment; without a
    registry, it serves the platform's (`roost.services.build_registry()`); without a clock,
    its expiries run on the machine's (`roost.clock`)."""
    settings = settings or load_settings()
    platform = build_platform(settings, clock=clock)
    registry = build_registry() if registry is None else registry
    dispatcher = Dispatcher(platform, registry)
    metrics = Metrics()

    # Built on first request, not at start: they cost ~0.3 s, which every server start (and
    # every test server) would otherwise pay.
    @functools.cache
    def openapi() -> bytes:
        return json.dumps(openapi_document(registry)).encode()

    @functools.cache
    def operations_html() -> bytes:
        return operations_page(registry).encode()

    @functools.cache
    def swagger() -> bytes:
        return swagger_page().encode()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (
            open_platform(settings, platform=platform),
            metrics_listener(settings.metrics_listen, metrics, platform),
        ):
            resume_collector()  # paused by `roost serve` for its start-up
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
        response = answer.as_response()
        # a page that holds a token is never shown inside another site's frame
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
        return response

    async def operations_endpoint(request: Request) -> Response:
        encoding = request.headers.get("accept-encoding")
        answer = compressed(operations_html(), "text/html; charset=utf-8", accept_encoding=encoding)
        return answer.as_response()

    async def metrics_endpoint(request: Request) -> Response:
        """Prometheus figures, for the default tenant's holders of `metrics:read`: they span
        every tenant, so no tenant's own admin may read them."""
        rid = request_id(request.headers.get("x-request-id"))
        codec = response_codec(request.headers.get("accept"))
        try:
            if settings.metrics_listen:
                raise NotFoundError(
                    "/metrics is served on its own address here (ROOST_METRICS_LISTEN)"
                )
            ctx = await dispatcher.context_from_scope(request.scope, headers_of(request.scope), rid)
            check_access(ctx, METRICS_SCOPE, "/metrics")
            if ctx.tenant != DEFAULT_TENANT:
                raise AuthorizationError(
                    "/metrics spans every tenant: only the default tenant's callers may read it",
                    code="missing_scope",
                    details={"scope": METRICS_SCOPE},
                )
        except Exception as exc:
            return error_reply(as_roost_error(exc, rid), codec, rid).as_response()
        body, kind = await metrics.exposition(platform)
        return Response(body, media_type=kind)

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
        Route("/metrics", metrics_endpoint, methods=["GET"]),
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

    door = RestDoor(dispatcher, fallback=other_doors)
    operations = {path: route.name for path, route in door.routes.items()}
    return Observed(
        traced(door, settings), metrics, operations, access_log=settings.access_log, door=door
    )


def traced(app: ASGIApp, settings: Settings) -> ASGIApp:
    """`app` inside OpenTelemetry's ASGI middleware when ROOST_TRACING is on (the exporter is
    set up by the standard OTEL_* variables, `opentelemetry-instrument` or the host app)."""
    if not settings.tracing:
        return app
    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    except ModuleNotFoundError:
        raise ConfigurationError(
            'ROOST_TRACING needs the OpenTelemetry packages: pip install "roost[tracing]"'
        ) from None
    return OpenTelemetryMiddleware(app)
