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

import contextlib
import select
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any, Final

import anyio
import httpcore
import httpx
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSAttribute, TLSStream

from roost.client._transport import AsyncBackendTransport, BackendTransport, tls_context

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


def door_socket(fd: int, timeout: float | None = None) -> socket.socket:
    """One connected socket to the API from the door `fd` (for the SDK's WebSockets)."""
    return _connection(_door(fd), timeout)


# -- httpcore's network over the door's sockets ----------------------------------------------
# Hand-written on httpcore's public interfaces: its own streams over a socket are private
# (`httpcore._backends`), and its public backends only make sockets from an address.


def _readable(sock: socket.socket | None) -> bool:
    """Whether a kept-alive connection has something to read (the server closed it)."""
    if sock is None or sock.fileno() < 0:
        return True
    return bool(select.select([sock], [], [], 0)[0])


class _SocketStream(httpcore.NetworkStream):
    """A connected socket (plain, or wrapped in TLS) as httpcore's sync stream."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            self._sock.settimeout(timeout)
            return self._sock.recv(max_bytes)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            self._sock.settimeout(timeout)
            self._sock.sendall(buffer)

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            try:
                self._sock.settimeout(timeout)
                return _SocketStream(
                    ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
                )
            except BaseException:
                self._sock.close()
                raise

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._sock if isinstance(self._sock, ssl.SSLSocket) else None
        if info == "socket":
            return self._sock
        if info == "is_readable":
            return _readable(self._sock)
        return None


class _AsyncSocketStream(httpcore.AsyncNetworkStream):
    """An anyio byte stream over a connected socket as httpcore's async stream."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            with anyio.fail_after(timeout):
                try:
                    return await self._stream.receive(max_bytes)
                except anyio.EndOfStream:
                    return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if buffer:
            with _mapped(httpcore.WriteTimeout, httpcore.WriteError), anyio.fail_after(timeout):
                await self._stream.send(buffer)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            try:
                with anyio.fail_after(timeout):
                    wrapped = await TLSStream.wrap(
                        self._stream,
                        ssl_context=ssl_context,
                        hostname=server_hostname,
                        standard_compatible=False,
                        server_side=False,
                    )
            except BaseException:
                await self.aclose()
                raise
        return _AsyncSocketStream(wrapped)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._stream.extra(TLSAttribute.ssl_object, None)  # noqa: S610 - anyio's
        sock = self._stream.extra(SocketAttribute.raw_socket, None)  # noqa: S610 - anyio's
        if info == "socket":
            return sock
        if info == "is_readable":
            return _readable(sock)
        return None


@contextlib.contextmanager
def _mapped(timeout: type[Exception], failure: type[Exception]) -> Iterator[None]:
    """A socket's errors as httpcore's (which httpx maps to its own)."""
    try:
        yield
    except TimeoutError as exc:
        raise timeout(str(exc) or "timed out") from exc
    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
        raise failure(str(exc) or type(exc).__name__) from exc


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
        return _SocketStream(_connection(self._door, timeout))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: object = None
    ) -> httpcore.NetworkStream:
        return _SocketStream(_connection(self._door, timeout))


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
        return _AsyncSocketStream(await anyio.abc.SocketStream.from_socket(connection))


# -- httpx's transports over an httpcore pool with that network --------------------------------
# httpx's HTTPTransport takes no network backend, so these do its small part themselves
# (httpx.Request to httpcore.Request and back, httpcore's errors as httpx's) on public API.


def _ssl_context(tls: bool) -> ssl.SSLContext | None:
    """A verifying TLS context for an https API, else none: making one reads the CA file,
    which a worker under the fallback may not reach (a checkout in a private folder), and an
    http API never needs it."""
    return tls_context() if tls else None


def _pool_options(limits: httpx.Limits, tls: bool) -> dict[str, Any]:
    """What both transports' httpcore pools take besides their network backend."""
    return {
        "ssl_context": _ssl_context(tls),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


class DoorTransport(BackendTransport):
    """The sync client's transport inside a function under the fallback sandbox."""

    def __init__(self, fd: int, limits: httpx.Limits, *, tls: bool) -> None:
        super().__init__(DoorBackend(fd), **_pool_options(limits, tls))


class AsyncDoorTransport(AsyncBackendTransport):
    """The async client's transport inside a function under the fallback sandbox."""

    def __init__(self, fd: int, limits: httpx.Limits, *, tls: bool) -> None:
        super().__init__(AsyncDoorBackend(fd), **_pool_options(limits, tls))
