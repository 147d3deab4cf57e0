"""Fixtures that start real Roost servers (uvicorn on a free loopback port) on real backends.

`server` runs once per backend: SQLite in a temporary data dir, and the machine's PostgreSQL
(`ROOST_TEST_POSTGRES_URL`, default postgresql://postgres@127.0.0.1:5432/test) in a schema
prefix of its own. PostgreSQL tests skip when it is unreachable, unless
`ROOST_REQUIRE_SERVICES` is set (CI sets it), where they fail instead.

Every test server runs on a `ShiftedClock` (`running.clock`): a test that checks an expiry
moves the clock past it instead of sleeping (on its own server, or on `clocked_server`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import uvicorn

from roost.client._transport import tls_context
from roost.server import create_app
from roost.server.dispatch import Dispatcher
from roost.server.metrics import Observed
from roost.server.rest import RestDoor
from roost.server.serving import server_config
from roost.services.context import Platform
from roost.settings import Settings, load_settings
from roost.testing import loopback_listener, serve_in_thread
from tests.clocks import ShiftedClock
from tests.proxy import FlakyProxy

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin-password-1"
POSTGRES_URL = os.environ.get(
    "ROOST_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
"""A superuser: the tests' own setup and inspection, never a server."""
SERVER_PG_ROLE = "roost_test"
SERVER_POSTGRES_URL = urlunsplit(
    urlsplit(POSTGRES_URL)._replace(
        netloc=f"{SERVER_PG_ROLE}@{urlsplit(POSTGRES_URL).netloc.rsplit('@', 1)[-1]}"
    )
)
"""What test servers connect as: a role with LOGIN, CREATEROLE and CREATE on the database
(`ensure_server_role`), as the README tells a deployment to make, never a superuser."""


FAST_PASSWORD_HASH = {
    "password_hash_memory_kib": 1024,
    "password_hash_time_cost": 1,
    "password_hash_parallelism": 1,
}
"""Test servers hash passwords cheaply: at the production cost every sign-in spends a third of
a second of CPU, minutes over the suite (as Django's test settings swap in a fast hasher)."""


@dataclass
class RunningServer:
    url: str
    settings: Settings
    backend: str
    _server: uvicorn.Server
    _thread: threading.Thread
    clock: ShiftedClock
    """the clock every expiry of this server is measured on; `clock.advance(s)` ages it"""

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker more than there are cores. A worker runs its test servers as
    threads of its own process, which wait on each other, on PostgreSQL and on subprocesses
    much of the time: with one worker a core, a quiet 2-core run left them idle ~30%."""
    return (os.cpu_count() or 1) + 1


def pytest_configure(config: pytest.Config) -> None:
    _share_one_tls_context()


def _share_one_tls_context() -> None:
    """Make every httpx client of a test process share one verifying TLS context, as the SDK's
    do (`roost.client._transport.tls_context`). Tests make their own clients by the hundred
    (`httpx.get`, `httpx.Client(...)`), each reading the CA file again: a tenth of the CPU
    of the security tests. httpx's transports take the function by name from this module;
    if a release moves it, the lookup below fails at once rather than
    silently; an asked-for context (`verify=...`, a client certificate) is made as before."""
    import httpx._transports.default as transports

    make = transports.create_ssl_context  # type: ignore[attr-defined]
    shared = tls_context()

    def create(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is True and cert is None and trust_env:
            return shared
        return make(verify=verify, cert=cert, trust_env=trust_env)

    transports.create_ssl_context = create  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def postgres_available() -> bool:
    parts = urlsplit(POSTGRES_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 3).close()
    except OSError:
        return False
    return True


REDIS_URL = os.environ.get("ROOST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    parts = urlsplit(REDIS_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 3).close()
    except OSError:
        if os.environ.get("ROOST_REQUIRE_SERVICES"):
            pytest.fail(f"Redis at {REDIS_URL} is unreachable and ROOST_REQUIRE_SERVICES is set")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable")


def require_postgres() -> None:
    if postgres_available():
        return
    if os.environ.get("ROOST_REQUIRE_SERVICES"):
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URL} is unreachable and ROOST_REQUIRE_SERVICES is set"
        )
    pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable")


def _as_superuser(work: Callable[[Any], Any]) -> None:
    """`await work(connection)` on a superuser connection, in a thread of its own (callers
    may be inside a running event loop: async fixtures)."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await work(conn)
        finally:
            await conn.close()

    failures: list[BaseException] = []

    def thread() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=thread)
    worker.start()
    worker.join()
    if failures:
        raise failures[0]


def drop_pg_schemas(prefix: str) -> None:
    """Drop the schemas of a schema prefix, and the roles its tenants' analytics ran as."""

    async def drop(conn: Any) -> None:
        pattern = prefix + "\\_%"
        names = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname = $1 OR nspname LIKE $2",
            prefix,
            pattern,
        )
        for row in names:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{row["nspname"]}" CASCADE')
        roles = await conn.fetch("SELECT rolname FROM pg_roles WHERE rolname LIKE $1", pattern)
        for row in roles:
            await conn.execute(f'DROP ROLE IF EXISTS "{row["rolname"]}"')

    _as_superuser(drop)


_server_role_ready = False


def ensure_server_role() -> None:
    """Create the test servers' role once (idempotent; test processes may race for it)."""
    global _server_role_ready
    if _server_role_ready:
        return

    async def create(conn: Any) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('roost-test-role'))")
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", SERVER_PG_ROLE):
                await conn.execute(f"CREATE ROLE {SERVER_PG_ROLE} LOGIN CREATEROLE")
            database = urlsplit(POSTGRES_URL).path.lstrip("/") or "postgres"
            await conn.execute(f'GRANT CREATE ON DATABASE "{database}" TO {SERVER_PG_ROLE}')

    _as_superuser(create)
    _server_role_ready = True


def start_server(data_dir: Path, backend: str = "sqlite", **overrides: Any) -> RunningServer:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "admin_username": ADMIN_USERNAME,
        "admin_password": ADMIN_PASSWORD,
        "secret_key": secrets.token_urlsafe(40),
        **FAST_PASSWORD_HASH,
        # a revoked credential ends its subscriptions within half a second, not five
        "ws_credential_watch_seconds": 0.5,
        # every test calls from 127.0.0.1: the shared servers must not run out of auth mails
        "mails_per_client": 100_000,
        # warm sandboxed workers cost a process each: only the servers that run functions
        # start them (`functions_server`, or `functions_enabled=True`)
        "functions_enabled": False,
        "functions_pool_size": 2,
        # each server's workers run under uids of their own (a pool refuses uids in use)
        "functions_uid_base": 2_000_000 + secrets.randbelow(1_000_000) * 16,
        # test servers share one Redis: each takes only its own async invocations
        "functions_queue": f"t{secrets.token_hex(6)}",
    }
    if backend == "postgresql":
        ensure_server_role()
        values["database_url"] = SERVER_POSTGRES_URL
        values["pg_schema_prefix"] = f"rt{secrets.token_hex(4)}"
    registry = overrides.pop("registry", None)  # a test's own operations beside the platform's
    with loopback_listener() as (listener, port):
        values["functions_api_url"] = f"http://127.0.0.1:{port}"  # where functions call back
        values["public_url"] = f"http://127.0.0.1:{port}"  # where providers send sign-ins back
        values.update(overrides)
        settings = load_settings(**values)
        clock = ShiftedClock()
        # the same uvicorn setup as `roost serve`: header limits, log redaction, ws implementation
        config = server_config(
            create_app(settings, registry, clock=clock),
            settings,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
        )
        server = uvicorn.Server(config)
        thread = serve_in_thread(server, listener, "the test server")
    return RunningServer(f"http://127.0.0.1:{port}", settings, backend, server, thread, clock)


def _session_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, **overrides: Any
) -> Iterator[RunningServer]:
    backend: str = request.param
    if backend == "postgresql":
        require_postgres()
    running = start_server(tmp_path_factory.mktemp(f"roost-{backend}"), backend, **overrides)
    yield running
    running.stop()
    if backend == "postgresql":
        drop_pg_schemas(running.settings.pg_schema_prefix)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server per backend with an admin user, shared by the whole session. Its clock is
    never moved: tests may reckon times on it from the machine's."""
    yield from _session_server(request, tmp_path_factory)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def clocked_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server per backend for tests that move its clock past an expiry instead of waiting
    for it (`clocked_server.clock.advance(seconds)`), shared by the whole session. Its clock
    runs ahead of the machine's by what they moved it: reckon times on it from
    `clocked_server.clock.now()`, and sign in within the test (a token kept from an earlier
    test may have expired)."""
    yield from _session_server(request, tmp_path_factory)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def functions_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server per backend that runs functions (its warm workers started), shared by the
    whole session."""
    yield from _session_server(request, tmp_path_factory, functions_enabled=True)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start a server with its own settings (SQLite unless `backend=` says otherwise)."""
    started: list[RunningServer] = []

    def make(backend: str = "sqlite", **overrides: Any) -> RunningServer:
        if backend == "postgresql":
            require_postgres()
        data_dir = overrides.pop("data_dir", tmp_path / f"data{len(started)}")
        running = start_server(data_dir, backend, **overrides)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()
        if running.backend == "postgresql":
            drop_pg_schemas(running.settings.pg_schema_prefix)


def unique(prefix: str) -> str:
    """A name no other test uses (tests share a server per backend)."""
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture
def flaky_proxy() -> Iterator[Callable[[str], FlakyProxy]]:
    """A proxy to a server that loses the responses it is told to."""
    proxies: list[FlakyProxy] = []

    def make(target_url: str) -> FlakyProxy:
        proxies.append(FlakyProxy(target_url))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (for timeouts)."""
    listener = socket.create_server(("127.0.0.1", 0))
    yield listener.getsockname()[1]
    listener.close()


def dispatcher_of(running: RunningServer) -> Dispatcher:
    """The Dispatcher inside a test server (for tests that watch its limits)."""
    hook = running._server.config.app
    assert isinstance(hook, Observed)  # what `create_app` returns: the metrics hook around it
    assert isinstance(hook.door, RestDoor)
    return hook.door.dispatcher


def calls_in_flight(running: RunningServer) -> int:
    """The calls a test server is running now, all doors and tenants (its own count)."""
    return sum(dispatcher_of(running).limits._in_flight.tenants.values())


def platform_of(running: RunningServer) -> Platform:
    """The Platform inside a test server (for tests that watch its backends)."""
    return dispatcher_of(running).platform


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 protocol server on loopback (moto), for the S3 storage backend."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
