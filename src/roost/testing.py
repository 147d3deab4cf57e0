"""Testing an app built on Roost: a pytest plugin, and an in-process client.

Installed with Roost (the `pytest11` entry point), the plugin gives every test suite:

- `roost_server`: a real embedded server (SQLite and a temporary data dir, whatever database,
  storage, Redis or SMTP the project's `.env` or environment names) on a free loopback
  port, started once per test session and stopped after it. `.url`, `.admin_username`,
  `.admin_password`, `.data_dir`.
- `roost_admin`: a `roost.Client` signed in as its superuser (a new one for each test).
- `roost_admin_async`: the same as a `roost.AsyncClient` (tests marked `@pytest.mark.anyio`).
- `roost_server_settings`: the server's settings (override this session fixture in your
  `conftest.py` to change them, e.g. `{"functions_enabled": True}`).

`asgi_client(app)` is `AsyncClient(app=app)`: a client that calls an app in the test's own
process, without a socket, its startup run first and its shutdown last (`Client(app=app)` is
the same for sync tests):

    async with asgi_client(create_app(load_settings(data_dir=tmp_path))) as client:
        admin = await client.auth.sign_in_with_password("admin", password)

It speaks HTTP only: realtime subscriptions and `client.rpc` need a real server.

The plugin imports the server only when a fixture starts one, so a project with the SDK alone
(no `roost[server]`) can still run pytest with Roost installed.
"""

from __future__ import annotations

import secrets
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

from roost import AsyncClient, Client
from roost.client._asgi import ASGIApp
from roost.errors import ConfigurationError

if TYPE_CHECKING:
    import uvicorn

__all__ = ["RoostServer", "asgi_client", "start_roost_server"]

FAST_PASSWORD_HASH = {
    "password_hash_memory_kib": 1024,
    "password_hash_time_cost": 1,
    "password_hash_parallelism": 1,
}
"""Test servers hash passwords cheaply (at the production cost a sign-in spends a third of a
second of CPU), as Django's test settings swap in a fast hasher. Never for a real server."""


class RoostServer(msgspec.Struct):
    """A running test server."""

    url: str
    data_dir: Path
    admin_username: str
    admin_password: str
    _server: Any
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)


def loopback_socket() -> socket.socket:
    """A socket bound to a free loopback port, for a server to listen on (`serve_in_thread`).
    Bound here and handed over, not chosen free and bound later: another process could take
    the port between the two."""
    listener = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
    except BaseException:
        listener.close()
        raise
    return listener


@contextmanager
def loopback_listener() -> Iterator[tuple[socket.socket, int]]:
    """`loopback_socket()` and its port, for a server started in the block; closed if the
    block raises (the server did not start)."""
    listener = loopback_socket()
    try:
        yield listener, listener.getsockname()[1]
    except BaseException:
        listener.close()
        raise


def serve_in_thread(server: uvicorn.Server, listener: socket.socket, what: str) -> threading.Thread:
    """Run `server` on `listener` in a daemon thread of this process; return once it serves
    (RuntimeError naming `what` if it stops or takes over 30 s to start)."""
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name=what, daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start (see the log above)")
        time.sleep(0.02)
    return thread


def start_roost_server(data_dir: Path, **settings: Any) -> RoostServer:
    """Start an embedded server in a thread of this process, on a free loopback port, with a
    superuser of a random password; `settings` override any of `roost.settings.Settings`."""
    try:
        import uvicorn

        from roost.server import create_app
        from roost.server.serving import server_config
        from roost.settings import load_settings
    except ImportError as exc:  # the SDK alone: the fixtures need the platform
        raise ConfigurationError(
            f'the roost_server fixture needs the server: pip install "roost[server]" ({exc})'
        ) from None
    with loopback_listener() as (listener, port):
        values: dict[str, Any] = {
            "data_dir": data_dir,
            # The project's .env or environment names its real backends (ROOST_DATABASE_URL...):
            # a test server must not migrate, seed or write them, nor mail through its SMTP. Its
            # own SQLite, files and outbox in `data_dir`, unless `settings` name others.
            "database_url": None,
            "storage_url": None,
            "redis_url": None,
            "smtp_url": None,
            "admin_username": "admin",
            "admin_password": secrets.token_urlsafe(18),
            "secret_key": secrets.token_urlsafe(40),
            **FAST_PASSWORD_HASH,
            # warm sandboxed workers cost a process each: on only where a suite asks for them
            "functions_enabled": False,
            "functions_api_url": f"http://127.0.0.1:{port}",
            "public_url": f"http://127.0.0.1:{port}",
            **settings,
        }
        resolved = load_settings(**values)
        config = server_config(
            create_app(resolved), resolved, host="127.0.0.1", port=port, log_level="warning"
        )
        server = uvicorn.Server(config)
        thread = serve_in_thread(server, listener, "the Roost test server")
    password = resolved.admin_password or ""
    return RoostServer(
        f"http://127.0.0.1:{port}", data_dir, resolved.admin_username, password, server, thread
    )


@pytest.fixture(scope="session")
def roost_server_settings() -> dict[str, Any]:
    """Settings of `roost_server` (override in a conftest.py to change them)."""
    return {}


@pytest.fixture(scope="session")
def roost_server(roost_server_settings: dict[str, Any]) -> Iterator[RoostServer]:
    """A real embedded Roost server for the test session, in a temporary data dir."""
    with tempfile.TemporaryDirectory(prefix="roost-test-") as folder:
        running = start_roost_server(Path(folder), **roost_server_settings)
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture
def roost_admin(roost_server: RoostServer) -> Iterator[Client]:
    """A `roost.Client` signed in as the test server's superuser."""
    with Client(api_url=roost_server.url) as client:
        yield client.auth.sign_in_with_password(
            roost_server.admin_username, roost_server.admin_password
        )


@pytest.fixture
async def roost_admin_async(roost_server: RoostServer) -> AsyncIterator[AsyncClient]:
    """A `roost.AsyncClient` signed in as the test server's superuser (anyio tests)."""
    async with AsyncClient(api_url=roost_server.url) as client:
        yield await client.auth.sign_in_with_password(
            roost_server.admin_username, roost_server.admin_password
        )


@asynccontextmanager
async def asgi_client(app: ASGIApp, **options: Any) -> AsyncIterator[AsyncClient]:
    """`AsyncClient(app=app, **options)`, entered: it calls `app`
    (`roost.server.create_app(...)`) in this process, without a socket, after the app's
    startup (opening its backends) and before its shutdown. `options` are the client's
    (`tenant=`, `token=`, ...)."""
    async with AsyncClient(app=app, **options) as client:
        yield client
