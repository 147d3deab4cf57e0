"""The app factory: settings → platform (backends) → registry → the doors, as plain data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from roost.backends.blob import open_blob_store
from roost.backends.bus import Bus, MemoryBus
from roost.backends.bus.redis import RedisBus
from roost.backends.kv import KVStore
from roost.backends.kv.redis import RedisKVStore
from roost.backends.kv.sql import SqlKVStore
from roost.backends.mail import open_mailer
from roost.backends.queue import QueueStore
from roost.backends.queue.redis import RedisQueueStore
from roost.backends.queue.sql import SqlQueueStore
from roost.backends.ratelimit import MemoryRateLimiter, RedisRateLimiter
from roost.backends.sql import Database
from roost.backends.stream import StreamStore
from roost.backends.stream.redis import RedisStreamStore
from roost.backends.stream.sql import SqlStreamStore
from roost.errors import APIError, ConfigurationError, NotFoundError, ValidationError
from roost.server.dispatch import Dispatcher
from roost.server.files import file_routes
from roost.server.openapi import docs_page, openapi_document
from roost.server.responses import compressed, error_reply, request_id, response_codec
from roost.server.rest import RestDoor
from roost.server.ws import WebSocketDoor
from roost.services import build_registry
from roost.services.context import Platform, PrincipalCache
from roost.services.metering import Meter
from roost.services.registry import Registry
from roost.services.security import AccessTokens, Passwords
from roost.services.tenants import migrate_all
from roost.services.users import ensure_admin
from roost.services.vault import Vault
from roost.settings import Settings, load_settings

logger = logging.getLogger("roost.server")


def build_platform(settings: Settings) -> Platform:
    """The backends a server runs on, chosen by the settings (nothing is connected yet)."""
    db = Database(
        settings.resolved_database_url,
        data_dir=settings.data_dir,
        pg_schema_prefix=settings.pg_schema_prefix,
        role_key=settings.master_key_bytes(),
    )
    redis = settings.redis_url
    kv: KVStore = (
        RedisKVStore(redis, near_cache_bytes=settings.kv_near_cache_bytes)
        if redis
        else SqlKVStore(db)
    )
    queues: QueueStore = RedisQueueStore(redis) if redis else SqlQueueStore(db)
    streams: StreamStore = RedisStreamStore(redis) if redis else SqlStreamStore(db)
    bus: Bus = RedisBus(redis) if redis else MemoryBus()
    return Platform(
        settings=settings,
        db=db,
        kv=kv,
        queues=queues,
        streams=streams,
        bus=bus,
        limiter=RedisRateLimiter(redis) if redis else MemoryRateLimiter(),
        access_tokens=AccessTokens(settings.signing_key(), settings.access_token_ttl),
        passwords=Passwords(
            settings.password_hash_memory_kib,
            settings.password_hash_time_cost,
            settings.password_hash_parallelism,
        ),
        blobs=open_blob_store(settings.storage_url, settings.data_dir),
        principals=PrincipalCache(settings.auth_cache_seconds),
        vault=Vault(settings.master_key_bytes()),
        mailer=open_mailer(settings.smtp_url, settings.data_dir / "mail"),
        meter=Meter(),
    )


async def start_platform(platform: Platform) -> None:
    """Bring every tenant's tables up to date and create the first admin if configured."""
    settings = platform.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not settings.pg_allow_superuser and await platform.db.connects_as_superuser():
        # a superuser passes every check the database makes for tenants (analytics' roles)
        raise ConfigurationError(
            "the server connects to PostgreSQL as a superuser; connect as a role with LOGIN, "
            "CREATEROLE and CREATE on the database (see README), or set "
            "ROOST_PG_ALLOW_SUPERUSER=true"
        )
    await migrate_all(platform)
    await platform.blobs.prepare()
    await platform.bus.start()
    platform.listen_for_revocations()
    if settings.admin_password:
        created = await ensure_admin(
            platform, settings.admin_username, settings.admin_email or "", settings.admin_password
        )
        if created:
            logger.info("created admin user %r", settings.admin_username)


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> RestDoor:
    """The Roost ASGI app. Without settings, they are read from the environment; without a
    registry, it serves the platform's (`roost.services.build_registry()`)."""
    settings = settings or load_settings()
    platform = build_platform(settings)
    registry = build_registry() if registry is None else registry
    dispatcher = Dispatcher(platform, registry)
    openapi = json.dumps(openapi_document(registry)).encode()
    page = docs_page(registry).encode()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await start_platform(platform)
        metering = asyncio.create_task(platform.meter.run(platform.db))
        try:
            yield
        finally:
            metering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await metering
            await platform.db.close()
            await platform.blobs.close()
            await platform.kv.close()
            await platform.queues.close()
            await platform.streams.close()
            await platform.bus.close()
            await dispatcher.limits.close()  # its reports go through the limiter
            await platform.limiter.close()

    async def openapi_endpoint(request: Request) -> Response:
        encoding = request.headers.get("accept-encoding")
        return compressed(openapi, "application/json", accept_encoding=encoding).as_response()

    async def docs_endpoint(request: Request) -> Response:
        encoding = request.headers.get("accept-encoding")
        return compressed(page, "text/html; charset=utf-8", accept_encoding=encoding).as_response()

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
        Route("/api/v1/openapi.json", openapi_endpoint, methods=["GET"]),
        Route("/docs", docs_endpoint, methods=["GET"]),
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
