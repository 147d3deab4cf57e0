"""DotDo's client over the native SDK: `AsyncDotDo` (the seed's `DotDo`, which is async) and
the generated sync `DotDo` of `roost.compat._sync.dotdo`.

Calls by name go over the native RPC pool (`client.rpc`: `pool_size` WebSockets, a caller
waits up to `pool_timeout` for room); collections are Roost's own (`client.collection`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from roost.client._async.client import AsyncClient
from roost.client._async.collection import AsyncCollection
from roost.compat._core.dotdo import DotDoSettings, configure_logging


class AsyncDotDo:
    """A DotDo client on Roost: `DotDo(api_key=..., endpoint=...)`; unset settings come from
    `DOTDO_*` (`DOTDO_API_KEY`, `DOTDO_ENDPOINT`, `DOTDO_POOL_SIZE`, ...), then `ROOST_*`.
    `endpoint` names the Roost server (`ws://host:8787` or `http://host:8787`); an
    `X-Tenant-ID` header names the tenant.

    Example:
        async with DotDo(api_key=key, endpoint="ws://127.0.0.1:8787") as client:
            value = await client.call("kv.get", {"key": "greeting"})
    """

    def __init__(
        self,
        api_key: str | None = None,
        access_token: str | None = None,
        endpoint: str | None = None,
        headers: dict[str, str] | None = None,
        pool_size: int | None = None,
        pool_timeout: float | None = None,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        retry_max_delay: float | None = None,
        retry_multiplier: float | None = None,
        timeout: float | None = None,
        debug: bool | None = None,
    ) -> None:
        self.settings = DotDoSettings(
            api_key=api_key,
            access_token=access_token,
            endpoint=endpoint,
            headers=headers,
            pool_size=pool_size,
            pool_timeout=pool_timeout,
            max_retries=max_retries,
            retry_delay=retry_delay,
            retry_max_delay=retry_max_delay,
            retry_multiplier=retry_multiplier,
            timeout=timeout,
            debug=debug,
        )
        configure_logging(self.settings)
        self._client = AsyncClient(**self.settings.native_options())

    @property
    def native(self) -> AsyncClient:
        """The Roost client underneath, for what DotDo has no call for."""
        return self._client

    async def connect(self) -> None:
        """Open a connection of the pool now, so that a refused credential or an unreachable
        server shows here (`AuthError`, `ConnectionError`) rather than at the first call.

        Example:
            await client.connect()
        """
        await self._client.rpc.call("health.check")

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - DotDo's per-call timeout: past it the server cancels the call
    ) -> Any:
        """Run `method` (an operation such as `"kv.get"`, or a deployed function as
        `"fn.<name>"`) over the connection pool and return its result.

        Example:
            result = await client.call("kv.get", {"key": "greeting"}, timeout=120.0)
        """
        return await self._client.rpc.call(method, params, timeout=timeout)

    def stream(
        self, method: str, params: dict[str, Any] | None = None
    ) -> AsyncGenerator[Any, None]:
        """Run a streamed `method` and iterate over its items in order; leaving the loop
        early cancels the call on the server.

        Example:
            async for chunk in client.stream("database.export", {"table": "orders"}):
                print(chunk)
        """
        return self._client.rpc.stream(method, params)

    def collection(self, name: str) -> AsyncCollection:
        """Schemaless JSON documents by id: `get`, `set`, `update`, `delete`, `query()`.

        Example:
            await client.collection("users").set("user-123", {"name": "Alice"})
        """
        return self._client.collection(name)

    async def close(self) -> None:
        """Close the connection pool.

        Example:
            await client.close()
        """
        await self._client.close()

    async def __aenter__(self) -> AsyncDotDo:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
