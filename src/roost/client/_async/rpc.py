"""`client.rpc`: any operation by name over a pool of WebSockets (DotDo's `call` and `stream`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace
from roost.client._core.rpc import PoolStats
from roost.client._realtime import AsyncPool

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncRpc(Namespace):
    """Calls by name over WebSockets: every built-in operation (`"kv.get"`,
    `"database.export"`) and every deployed function (`"fn.<name>"`).

    The client keeps a pool of connections: opened on first need, at most `pool_size`, each
    carrying up to `calls_per_connection` calls at once; a caller that finds them all busy
    waits up to `pool_timeout` seconds, then gets `TimeoutError` (code `pool_timeout`). A call
    cut off by a dropped connection raises `ConnectionError` (it may or may not have run);
    the next call opens a new connection. Subscriptions stay on `client.realtime`.
    """

    _client: AsyncClient

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self._pool = AsyncPool(client.config, client._fresh_headers)
        client._shared.pools.append(self._pool)

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - DotDo's per-call timeout: past it the server cancels the call
    ) -> Any:
        """Run `method` and return its result. `timeout`: seconds to wait for the answer (the
        client's timeout by default); past it, `TimeoutError` and the server cancels the call.

        Example:
            value = await client.rpc.call("kv.get", {"key": "greeting"}, timeout=5)
        """
        return await self._pool.call(method, params, timeout=timeout)

    def stream(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> AsyncGenerator[Any, None]:
        """Run a streamed `method` and iterate over its items as the server sends them, in
        order. An error after some items raises once those have been read. Leaving the loop
        early (`break`, `aclose()`, or dropping it) cancels the call on the server.
        `timeout`: seconds to wait for each item (the client's timeout by default).

        Example:
            async for row in client.rpc.stream("database.export", {"table": "orders"}):
                print(row)
        """
        return self._pool.stream(method, params, timeout=timeout)

    def stats(self) -> PoolStats:
        """The pool now: connections open, calls in flight, callers waiting.

        Example:
            print(client.rpc.stats().connections)
        """
        return self._pool.stats()
