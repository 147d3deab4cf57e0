"""The client: configuration, connection pool, retries, credentials and the namespaces.

The sync client is generated from the async source by scripts/unasync.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cached_property
from typing import Any, ClassVar

import httpx
import msgspec

from roost.client._asgi import IN_PROCESS_URL, ASGIApp, AsyncASGIAppTransport, websocket_refusal
from roost.client._async.analytics import AsyncAnalytics
from roost.client._async.api_keys import AsyncApiKeys
from roost.client._async.audit import AsyncAudit
from roost.client._async.auth import AsyncAuth
from roost.client._async.collection import AsyncCollection
from roost.client._async.database import AsyncDatabase
from roost.client._async.functions import AsyncFunctions
from roost.client._async.health import AsyncHealth
from roost.client._async.kv import AsyncKV
from roost.client._async.logs import AsyncLogs
from roost.client._async.mail import AsyncMail
from roost.client._async.pages import AsyncPages
from roost.client._async.policies import AsyncPolicies
from roost.client._async.policy import AsyncPolicy
from roost.client._async.pubsub import AsyncPubSub
from roost.client._async.queue import AsyncQueue
from roost.client._async.roles import AsyncRoles
from roost.client._async.rpc import AsyncRpc
from roost.client._async.schema import AsyncSchema
from roost.client._async.scopes import AsyncScopes
from roost.client._async.secrets import AsyncSecrets
from roost.client._async.site import AsyncSiteSettings
from roost.client._async.storage import AsyncFiles, AsyncStorage
from roost.client._async.stream import AsyncStream
from roost.client._async.tenants import AsyncTenants
from roost.client._async.triggers import AsyncTriggers
from roost.client._async.usage import AsyncUsage
from roost.client._async.users import AsyncUsers
from roost.client._core.breaker import CircuitBreaker
from roost.client._core.config import ClientConfig
from roost.client._core.credentials import Credential, TokenSession
from roost.client._core.modes import ModeSelecting
from roost.client._core.protocol import (
    USER_AGENT,
    PreparedRequest,
    identity_headers,
    operation_path,
    prepare,
)
from roost.client._core.results import BatchItemResult
from roost.client._core.retry import (
    Backoff,
    CallFlow,
    Reply,
    Retry,
    Send,
    Sleep,
    call_flow,
    decode_response,
    network_error,
)
from roost.client._core.rpc import call_timeout
from roost.client._door import AsyncDoorTransport
from roost.client._realtime import AsyncPool, AsyncRealtime, Event, Route, websocket_url
from roost.client._transport import tls_context
from roost.errors import ConfigurationError, RoostError


class _Shared:
    """What every client derived from one another shares: the HTTP connection pool (or the
    in-process app) and the breaker; and the WebSockets of each, to close them all together."""

    def __init__(
        self, config: ClientConfig, http: httpx.AsyncClient | None, app: ASGIApp | None
    ) -> None:
        limits = httpx.Limits(
            max_connections=config.pool_size,
            max_keepalive_connections=config.pool_size if config.keep_alive else 0,
        )
        timeout = httpx.Timeout(config.timeout, pool=config.pool_timeout)
        # inside a sandboxed function the API is a Unix socket (ROOST_API_SOCKET), or the
        # runtime hands connections to it (ROOST_API_DOOR) where no socket may be opened
        transport: httpx.AsyncBaseTransport | None = None
        self.app: AsyncASGIAppTransport | None = None
        if app is not None:
            transport = self.app = AsyncASGIAppTransport(app)
        elif config.api_door is not None:
            tls = config.api_url.startswith("https:")
            transport = AsyncDoorTransport(config.api_door, limits, tls=tls)
        elif config.api_socket:
            transport = httpx.AsyncHTTPTransport(
                uds=config.api_socket, limits=limits, verify=tls_context()
            )
        self.http = http or httpx.AsyncClient(
            base_url=config.api_url,
            verify=tls_context(),
            limits=limits,
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
            transport=transport,
        )
        self.breaker = CircuitBreaker(
            config.circuit_breaker_threshold, config.circuit_breaker_reset
        )
        self.retry = Retry(
            Backoff(config.retry_delay, config.retry_multiplier, config.retry_max_delay),
            config.max_retries,
        )
        self.realtimes: list[AsyncRealtime] = []
        self.pools: list[AsyncPool] = []

    def need_websockets(self, what: str) -> None:
        """Refuse a WebSocket feature to a client of an in-process app (HTTP only)."""
        if self.app is not None:
            raise websocket_refusal(what)


class AsyncClient(ModeSelecting):
    """A connection to a Roost server.

    Every argument can also come from `ROOST_<NAME>` environment variables or `.env`.
    Signing in returns a new client that shares this one's connection pool; closing any of
    them closes the pool. `pool_size` and `pool_timeout` bound both the HTTP pool and the
    WebSockets of `client.rpc` (10 connections, 30 s wait for room, as DotDo);
    `calls_per_connection` (100) is how many RPC calls one WebSocket carries at once.

    `app` is either the app slug this client acts for (a string: Taruvi's `app_slug`), or an
    ASGI app (`roost.server.create_app(...)`, or any app built on it) to call in this
    process, without a socket: its startup runs at `async with` (or the first call), its
    shutdown at `close()`, once for this client and every client derived from it. Such a
    client speaks HTTP only: `realtime`, subscriptions and `rpc` raise ConfigurationError.

    Example:
        async with AsyncClient(api_url="http://127.0.0.1:8787") as client:
            admin = await client.auth.sign_in_with_password("admin", "secret-password")
            me = await admin.auth.get_current_user()

        async with AsyncClient(app=create_app(load_settings(data_dir=path))) as client:
            await client.health.check()
    """

    MODE: ClassVar[str] = "async"

    def __init__(
        self,
        api_url: str | None = None,
        *,
        app: str | ASGIApp | None = None,
        tenant: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        retry_max_delay: float | None = None,
        retry_multiplier: float | None = None,
        pool_size: int | None = None,
        pool_timeout: float | None = None,
        calls_per_connection: int | None = None,
        keep_alive: bool | None = None,
        format: str | None = None,
        compression: bool | None = None,
        circuit_breaker_threshold: int | None = None,
        circuit_breaker_reset: float | None = None,
        token: str | None = None,
        token_type: str | None = None,
        mode: str | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        in_process = None if app is None or isinstance(app, str) else app
        if in_process is not None and http_client is not None:
            raise ConfigurationError(
                "give app= (an ASGI app to call in process) or http_client=, not both",
                details={"field": "http_client"},
            )
        self._config = ClientConfig.resolve(
            api_url=api_url or (IN_PROCESS_URL if in_process is not None else None),
            app=None if in_process is not None else app,
            tenant=tenant,
            timeout=timeout,
            max_retries=max_retries,
            retry_delay=retry_delay,
            retry_max_delay=retry_max_delay,
            retry_multiplier=retry_multiplier,
            pool_size=pool_size,
            pool_timeout=pool_timeout,
            calls_per_connection=calls_per_connection,
            keep_alive=keep_alive,
            format=format,
            compression=compression,
            circuit_breaker_threshold=circuit_breaker_threshold,
            circuit_breaker_reset=circuit_breaker_reset,
            token=token,
            token_type=token_type,
        )
        self._shared = _Shared(self._config, http_client, in_process)
        self._credential: Credential | None = None
        if self._config.token:
            self._credential = Credential(self._config.token, self._config.token_type)
        self._session: TokenSession | None = None
        self._refresh_lock = asyncio.Lock()

    # -- namespaces -------------------------------------------------------------------------

    @cached_property
    def auth(self) -> AsyncAuth:
        """Sign-in, tokens and the current user."""
        return AsyncAuth(self)

    @cached_property
    def api_keys(self) -> AsyncApiKeys:
        """API keys of the signed-in user."""
        return AsyncApiKeys(self)

    @cached_property
    def users(self) -> AsyncUsers:
        """Users of the tenant (admins)."""
        return AsyncUsers(self)

    @cached_property
    def roles(self) -> AsyncRoles:
        """Roles and their scopes (admins)."""
        return AsyncRoles(self)

    @cached_property
    def scopes(self) -> AsyncScopes:
        """Scopes to give: the platform's and your tenant's own."""
        return AsyncScopes(self)

    @cached_property
    def tenants(self) -> AsyncTenants:
        """Tenants of the platform (platform admins)."""
        return AsyncTenants(self)

    @cached_property
    def database(self) -> AsyncDatabase:
        """Rows of the tenant's tables: records and the query builder."""
        return AsyncDatabase(self)

    @cached_property
    def schema(self) -> AsyncSchema:
        """Tables and their changes (recorded migrations)."""
        return AsyncSchema(self)

    @cached_property
    def analytics(self) -> AsyncAnalytics:
        """Saved read-only queries."""
        return AsyncAnalytics(self)

    @cached_property
    def audit(self) -> AsyncAudit:
        """The audit log of secure tables."""
        return AsyncAudit(self)

    def collection(self, name: str) -> AsyncCollection:
        """Schemaless JSON documents of one collection.

        Example:
            users = client.collection("users")
        """
        return AsyncCollection(self, name)

    @cached_property
    def storage(self) -> AsyncStorage:
        """Buckets and files."""
        return AsyncStorage(self)

    @cached_property
    def logs(self) -> AsyncLogs:
        """Structured logs: write entries, query them."""
        return AsyncLogs(self)

    @cached_property
    def mail(self) -> AsyncMail:
        """Mail from templates, and the outbox."""
        return AsyncMail(self)

    @cached_property
    def usage(self) -> AsyncUsage:
        """What the tenant's calls cost: requests and bytes by period and API key."""
        return AsyncUsage(self)

    @cached_property
    def settings(self) -> AsyncSiteSettings:
        """The tenant's site settings: one JSON object."""
        return AsyncSiteSettings(self)

    @cached_property
    def pages(self) -> AsyncPages:
        """The pages of your app and the scopes each needs."""
        return AsyncPages(self)

    @cached_property
    def policies(self) -> AsyncPolicies:
        """The tenant's Cerbos policies as managed data: put, list, get, delete, versions."""
        return AsyncPolicies(self)

    @cached_property
    def policy(self) -> AsyncPolicy:
        """Checks against the tenant's policies: check, check_resources, filter_allowed,
        get_allowed_actions, plan."""
        return AsyncPolicy(self)

    @cached_property
    def secrets(self) -> AsyncSecrets:
        """Secrets: encrypted at rest, versioned, with app overrides."""
        return AsyncSecrets(self)

    async def get(self, key: str, app: str | None = None) -> str:
        """The value of the secret `key` (the app's own if `app` has one, else tenant-wide).

        Example:
            db_url = await client.get("DATABASE_URL")
        """
        return str((await self.secrets.get_secret(key, app))["value"])

    async def upsert(
        self, key: str, value: str, comment: str = "", app: str | None = None
    ) -> dict[str, Any]:
        """Create the secret `key` or give it a new value; returns it without its value.

        Example:
            await client.upsert("API_KEY", "new-value", comment="rotated")
        """
        return await self.secrets.set(key, value, comment=comment, app=app)

    @cached_property
    def functions(self) -> AsyncFunctions:
        """Deployed Python functions: deploy, versions, execute, stream, results."""
        return AsyncFunctions(self)

    @cached_property
    def triggers(self) -> AsyncTriggers:
        """Triggers: a function or a URL called on cron ticks, table changes, storage
        objects, queue messages, stream events and pub/sub messages."""
        return AsyncTriggers(self)

    @cached_property
    def kv(self) -> AsyncKV:
        """The KV cache: values, counters, hashes, scans and locks."""
        return AsyncKV(self)

    @cached_property
    def queue(self) -> AsyncQueue:
        """Work queues: publish, consume, ack/nack, dead letters."""
        return AsyncQueue(self)

    @cached_property
    def stream(self) -> AsyncStream:
        """Event streams: rooms of ordered events, live subscriptions and history. Called,
        `client.stream(method, params)` is DotDo's streamed call: `client.rpc.stream`.

        Example:
            async for chunk in client.stream("database.export", {"table": "orders"}):
                print(chunk)
        """
        return AsyncStream(self)

    @cached_property
    def pubsub(self) -> AsyncPubSub:
        """Publish/subscribe on topics with `*` and `#` wildcards."""
        return AsyncPubSub(self)

    @cached_property
    def realtime(self) -> AsyncRealtime:
        """The WebSocket connection (opened on first use) that carries subscriptions; its
        `call(method, params)` runs any operation over it.

        Example:
            value = await client.realtime.call("kv.get", {"key": "k"})
        """
        self._shared.need_websockets("client.realtime (subscriptions, streamed calls)")
        engine = AsyncRealtime(
            websocket_url(self._config.api_url),
            self._fresh_headers,
            binary=self._config.format == "msgpack",
            timeout=self._config.timeout,
            route=Route(self._config.api_socket, self._config.api_door),
        )
        self._shared.realtimes.append(engine)
        return engine

    @cached_property
    def rpc(self) -> AsyncRpc:
        """Any operation, or deployed function (`"fn.<name>"`), by name over a pool of
        WebSockets: `call` for an answer, `stream` for items (DotDo's RPC).

        Example:
            value = await client.rpc.call("kv.get", {"key": "k"}, timeout=5)
        """
        self._shared.need_websockets("client.rpc")
        return AsyncRpc(self)

    def on(self, event: Event, handler: Callable[..., Any]) -> None:
        """Call `handler` when the realtime connection is "connected" or "disconnected", or
        on an "error" (handler(exception)). Handlers may be async.

        Example:
            client.on("disconnected", lambda: print("offline, reconnecting"))
        """
        self.realtime.on(event, handler)

    @cached_property
    def files(self) -> AsyncFiles:
        """Files by id in categories (the Dominus form of storage)."""
        return AsyncFiles(self)

    @cached_property
    def health(self) -> AsyncHealth:
        """Whether the server and its backends answer."""
        return AsyncHealth(self)

    # -- state --------------------------------------------------------------------------------

    @property
    def config(self) -> ClientConfig:
        return self._config

    @property
    def is_authenticated(self) -> bool:
        """Whether this client sends a credential."""
        return self._session is not None or self._credential is not None

    def _derive(
        self,
        *,
        credential: Credential | None = None,
        session: TokenSession | None = None,
        config: ClientConfig | None = None,
    ) -> AsyncClient:
        """A client like this one with another credential (and config), sharing the pool."""
        clone = object.__new__(type(self))
        clone._config = config or self._config
        clone._shared = self._shared
        clone._credential = credential
        clone._session = session
        clone._refresh_lock = asyncio.Lock()
        return clone

    def _in_tenant(self, tenant: str) -> AsyncClient:
        """This client's credential, naming `tenant` in its requests (the compatibility entry
        points' per-call tenants; the server refuses a credential of another tenant)."""
        clone = self._derive(
            credential=self._credential,
            session=self._session,
            config=msgspec.structs.replace(self._config, tenant=tenant),
        )
        clone._refresh_lock = self._refresh_lock  # one session, refreshed once at a time
        return clone

    # -- calls --------------------------------------------------------------------------------

    async def call(
        self,
        operation: str,
        params: dict[str, Any] | None = None,
        *,
        idempotent: bool = False,
        authenticated: bool = True,
        wait: float = 0,
        timeout: float | None = None,  # noqa: ASYNC109 - per call, instead of the client's: passed to httpx
    ) -> Any:
        """Run any operation by name (`"auth.me"`) over HTTP and return its decoded result.
        `timeout`: seconds each attempt may take, instead of the client's timeout; `wait`:
        seconds the server may hold the call (long polls), added to it. (`client.rpc.call`
        runs the same operations over the WebSocket pool.)

        Example:
            me = await client.call("auth.me", idempotent=True, timeout=5)
        """
        return await self._request(
            operation_path(operation),
            params,
            idempotent=idempotent,
            authenticated=authenticated,
            wait=wait,
            timeout=timeout,
        )

    async def batch(self, commands: list[dict[str, Any]]) -> list[BatchItemResult]:
        """Run several operations in one round trip; each result has its own status.

        Example:
            results = await client.batch([{"command": "auth.me", "payload": {}}])
            assert results[0].ok
        """
        answer = await self._request("/api/v1/batch", {"operations": commands}, idempotent=False)
        return [
            BatchItemResult(
                status=item["status"], payload=item.get("payload"), error=item.get("error")
            )
            for item in answer["results"]
        ]

    async def _request(
        self,
        path: str,
        params: dict[str, Any] | None,
        *,
        idempotent: bool,
        authenticated: bool = True,
        wait: float = 0,
        timeout: float | None = None,  # noqa: ASYNC109 - per call, instead of the client's: passed to httpx
    ) -> Any:
        def build() -> PreparedRequest:
            credential = self._current_credential() if authenticated else None
            return prepare(self._config, path, params, credential=credential, idempotent=idempotent)

        shared = self._shared
        flow = call_flow(
            build,
            self._config,
            retry=shared.retry,
            breaker=shared.breaker,
            session=self._session if authenticated else None,
            wait=wait,
            timeout=call_timeout(timeout, self._config.timeout),
        )
        return await self._drive(flow)

    async def _drive(self, flow: CallFlow) -> Any:
        """Run a call's flow (`_core/retry.py`): do the I/O each step asks for and send back
        what came of it, until the flow returns the result or raises."""
        reply: Reply = None
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as done:
                return done.value
            reply = None
            if isinstance(step, Send):
                reply = await self._transmit(step)
            elif isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
            else:
                await self._refresh_session(force=step.force)

    async def _transmit(self, step: Send) -> httpx.Response | httpx.TransportError:
        request = step.request
        try:
            return await self._http.request(
                request.method,
                request.path,
                content=request.content,
                headers=request.headers,
                timeout=step.timeout,
            )
        except httpx.TransportError as exc:
            return exc

    async def _raw(
        self, method: str, path: str, *, content: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        """A request whose body is not an operation's parameters (file uploads); not retried,
        since its body may be a stream that cannot be sent twice."""
        self._shared.breaker.before_call(self._config.api_url)
        all_headers = await self._fresh_headers(headers)
        try:
            response = await self._http.request(method, path, content=content, headers=all_headers)
        except httpx.TransportError as exc:
            raise network_error(exc, self._config.api_url, None) from None
        return decode_response(response)

    @property
    def _http(self) -> httpx.AsyncClient:
        """The shared connection pool. A closed client refuses to send with a RoostError
        (httpx's own RuntimeError would name nothing of Roost's)."""
        http = self._shared.http
        if http.is_closed:
            raise RoostError(
                f"this client is closed ({self!r}): make a new one to call the server",
                code="client_closed",
            )
        return http

    async def _fresh_headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Headers naming this client (refreshing its access token first if it is due)."""
        self._http  # noqa: B018 - refuses on a closed client, before any token refresh
        if self._session is not None and self._session.needs_refresh():
            await self._refresh_session()
        return {**identity_headers(self._config, self._current_credential()), **(extra or {})}

    def _current_credential(self) -> Credential | None:
        if self._session is not None:
            return self._session.credential
        return self._credential

    async def _refresh_session(self, *, force: bool = False) -> None:
        session = self._session
        assert session is not None
        async with self._refresh_lock:
            if not force and not session.needs_refresh():
                return  # another task refreshed while this one waited
            tokens = await self._request(
                "/api/v1/auth/refresh",
                {"refresh": session.refresh},
                idempotent=False,
                authenticated=False,
            )
            session.update(tokens)

    # -- lifetime -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the connection pool, the RPC pools and realtime connections (shared with
        every client derived from this one)."""
        for engine in self._shared.realtimes:
            await engine.close()
        self._shared.realtimes.clear()
        for pool in self._shared.pools:
            await pool.close()
        self._shared.pools.clear()
        await self._shared.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        if self._shared.app is not None:
            await self._shared.app.start()  # the app's startup, whose failure shows here
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "authenticated" if self.is_authenticated else "anonymous"
        return (
            f"<{type(self).__name__} {self._config.api_url} tenant={self._config.tenant} {state}>"
        )
