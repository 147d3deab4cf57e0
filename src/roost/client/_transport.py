"""httpx transports over an httpcore connection pool with a network backend of our own.

httpx takes no network backend, and replacing its transport's private `_pool` would break on
any httpx release; these transports are httpx's public `BaseTransport` interfaces over
httpcore's public pool, written out because httpx keeps its own (`HTTPTransport`) closed to
them. Used where the SDK inside a function reaches the API through the runtime's door
(`client/_door.py`) and where the server posts webhooks to an address it checked
(`services/outbound.py`).
"""

from __future__ import annotations

import contextlib
import functools
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpcore
import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The verifying TLS context every client of this process shares (httpx's default: the
    CA file `SSL_CERT_FILE`/`SSL_CERT_DIR` name, else certifi's, read at first use).

    httpx makes one per client, and reading the CA file is ~10 ms of CPU: more than a whole
    call, for an app or a test that makes clients often. A context is safe to share."""
    return httpx.create_ssl_context()


class BackendTransport(httpx.BaseTransport):
    """A sync httpx transport whose connections `network_backend` makes."""

    def __init__(self, network_backend: httpcore.NetworkBackend, **pool: Any) -> None:
        self._pool = httpcore.ConnectionPool(**pool, network_backend=network_backend)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with _as_httpx(request):
            answer = self._pool.handle_request(_core_request(request))
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            stream=_Body(answer.stream, request),
            extensions=answer.extensions,
        )

    def close(self) -> None:
        self._pool.close()


class AsyncBackendTransport(httpx.AsyncBaseTransport):
    """An async httpx transport whose connections `network_backend` makes."""

    def __init__(self, network_backend: httpcore.AsyncNetworkBackend, **pool: Any) -> None:
        self._pool = httpcore.AsyncConnectionPool(**pool, network_backend=network_backend)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _as_httpx(request):
            answer = await self._pool.handle_async_request(_core_request(request))
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            stream=_AsyncBody(answer.stream, request),
            extensions=answer.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def _core_request(request: httpx.Request) -> httpcore.Request:
    return httpcore.Request(
        method=request.method,
        url=httpcore.URL(
            scheme=request.url.raw_scheme,
            host=request.url.raw_host,
            port=request.url.port,
            target=request.url.raw_path,
        ),
        headers=request.headers.raw,
        content=request.stream,  # httpx's streams iterate bytes
        extensions=request.extensions,
    )


@contextlib.contextmanager
def _as_httpx(request: httpx.Request) -> Iterator[None]:
    """httpcore's errors as the httpx error of the same name (the SDK handles those)."""
    try:
        yield
    except httpcore.TimeoutException as exc:
        raise _httpx_error(exc, httpx.TimeoutException)(str(exc), request=request) from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
        raise _httpx_error(exc, httpx.TransportError)(str(exc), request=request) from exc


def _httpx_error(exc: Exception, default: type[httpx.TransportError]) -> type[httpx.TransportError]:
    for cls in type(exc).__mro__:
        found = getattr(httpx, cls.__name__, None)
        if isinstance(found, type) and issubclass(found, default):
            return found
    return default


class _Body(httpx.SyncByteStream):
    def __init__(self, stream: Any, request: httpx.Request) -> None:
        self._stream, self._request = stream, request

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx(self._request):
            yield from self._stream

    def close(self) -> None:
        self._stream.close()


class _AsyncBody(httpx.AsyncByteStream):
    def __init__(self, stream: Any, request: httpx.Request) -> None:
        self._stream, self._request = stream, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx(self._request):
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        await self._stream.aclose()
