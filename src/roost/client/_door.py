"""How a client inside a function reaches the API where the sandbox lets it open no socket.

Under the runtime's fallback isolation a function may open no socket at all (a Unix socket
could reach any local server, a TCP one any host on the API's port). The runtime gives it a
door instead: a Unix socket (its fd in `ROOST_API_DOOR`) on which each one-byte request is
answered with one connected socket to the API, passed as SCM_RIGHTS (`roost.functions.relay`).
These transports take their connections from it, whatever host the URL names; TLS, when the
API URL is https, runs over them as over any socket.

Requests and answers are single messages (SOCK_SEQPACKET) and all answers are alike, so
threads and tasks that ask at once need no lock: each takes whichever answer comes first.
The exchange blocks for the time the server takes to answer (a new connection only: they
are pooled and kept alive), also in the async transport, which keeps it off any thread (a
thread left running would make the function's worker unclean).
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from typing import Any, Final

import anyio
import httpcore
import httpx
from anyio.abc import SocketStream

# httpcore's streams over a socket, which its public backends only make from an address
from httpcore._backends.anyio import AnyIOStream
from httpcore._backends.sync import SyncStream

_REQUEST: Final = b"?"
_GRANTED: Final = b"+"  # as roost.functions.relay answers (the SDK never imports the server)
_doors: dict[int, socket.socket] = {}  # one per fd, never closed: the runtime's, not ours


def _door(fd: int) -> socket.socket:
    door = _doors.get(fd)
    if door is None:
        door = _doors[fd] = socket.socket(fileno=fd)
    return door


def _connection(door: socket.socket, timeout: float | None) -> socket.socket:
    """Ask for one connection and wait for an answer (anyone's: they are all alike)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        door.send(_REQUEST)
        while True:
            try:
                answer, fds, _, _ = socket.recv_fds(
                    door, 1, 1, socket.MSG_DONTWAIT | socket.MSG_CMSG_CLOEXEC
                )
            except BlockingIOError:
                _wait(door, deadline)
                continue
            if answer == _GRANTED and fds:
                return socket.socket(fileno=fds[0])
            if not answer:
                raise httpcore.ConnectError("the function runtime closed its door to the API")
            raise httpcore.ConnectError(
                "the function runtime refused another connection to the API (too many open)"
            )
    except OSError as exc:
        raise httpcore.ConnectError(f"the function runtime's door to the API: {exc}") from exc


def _wait(door: socket.socket, deadline: float | None) -> None:
    """Until an answer is at the door (someone else may take it first)."""
    ready = select.poll()
    ready.register(door, select.POLLIN)
    left = None if deadline is None else max(deadline - time.monotonic(), 0) * 1000
    if not ready.poll(left):
        raise httpcore.ConnectTimeout("no connection to the API came in time")


class DoorBackend(httpcore.NetworkBackend):
    """httpcore's network for the sync client: every connection comes through the door."""

    def __init__(self, fd: int) -> None:
        self._door = _door(fd)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: object = None,
    ) -> httpcore.NetworkStream:
        return SyncStream(_connection(self._door, timeout))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: object = None
    ) -> httpcore.NetworkStream:
        return SyncStream(_connection(self._door, timeout))


class AsyncDoorBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network for the async client: every connection comes through the door."""

    def __init__(self, fd: int) -> None:
        self._door = _door(fd)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: object = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._connect(_connection(self._door, timeout))

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: object = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._connect(_connection(self._door, timeout))

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def _connect(self, connection: socket.socket) -> httpcore.AsyncNetworkStream:
        return AnyIOStream(await SocketStream.from_socket(connection))


def _ssl_context(tls: bool) -> ssl.SSLContext | None:
    """A verifying TLS context for an https API, else none: making one reads the CA file,
    which a worker under the fallback may not reach (a checkout in a private folder), and an
    http API never needs it. (The context httpx makes of `verify=False` is never used: the
    pool below replaces httpx's own.)"""
    return httpx.create_ssl_context() if tls else None


def _pool_options(limits: httpx.Limits, ssl_context: ssl.SSLContext | None) -> dict[str, Any]:
    """What both transports' httpcore pools take besides their network backend."""
    return {
        "ssl_context": ssl_context,
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


class DoorTransport(httpx.HTTPTransport):
    """The sync client's transport inside a function under the fallback sandbox."""

    def __init__(self, fd: int, limits: httpx.Limits, *, tls: bool) -> None:
        ssl_context = _ssl_context(tls)
        super().__init__(verify=ssl_context or False, limits=limits)
        # httpx takes no network backend: its pool is replaced by one that has ours
        self._pool = httpcore.ConnectionPool(
            **_pool_options(limits, ssl_context), network_backend=DoorBackend(fd)
        )


class AsyncDoorTransport(httpx.AsyncHTTPTransport):
    """The async client's transport inside a function under the fallback sandbox."""

    def __init__(self, fd: int, limits: httpx.Limits, *, tls: bool) -> None:
        ssl_context = _ssl_context(tls)
        super().__init__(verify=ssl_context or False, limits=limits)
        # httpx takes no network backend: its pool is replaced by one that has ours
        self._pool = httpcore.AsyncConnectionPool(
            **_pool_options(limits, ssl_context), network_backend=AsyncDoorBackend(fd)
        )
